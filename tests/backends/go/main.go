// A Go net/http/fcgi server (standard library only) for the real-peer matrix of the fcgi
// tests: `cargo xtask test` builds it with Debian's golang-go (xtask/src/peers.rs) and runs
//
//	fcgi-peer-go UNIX-SOCKET
//
// net/http/fcgi builds the request URL from REQUEST_URI, so the routes are those paths
// whatever SCRIPT_NAME and PATH_INFO say:
//
//	/echo          body "query=<raw query>\n"
//	/md5           body "md5=<hex>\n": the md5 of the request body
//	/big?bytes=N   N bytes (at most 1 GiB) of a..z in 64 KiB writes
//	/sleep?ms=N    sleeps N ms (at most 60000), then "slept N\n"
//
// It multiplexes (answers FCGI_MPXS_CONNS=1) and serves only the Responder role: an
// Authorizer or Filter request gets END_REQUEST with FCGI_UNKNOWN_ROLE.
package main

import (
	"crypto/md5"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"strconv"
	"time"
)

const chunk = 64 * 1024

func number(r *http.Request, name string, limit int) (int, error) {
	text := r.URL.Query().Get(name)
	if text == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < 0 || n > limit {
		return 0, fmt.Errorf("%s=%q is not a number in 0..=%d", name, text, limit)
	}
	return n, nil
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: fcgi-peer-go UNIX-SOCKET")
	}
	socket := os.Args[1]
	_ = os.Remove(socket)
	listener, err := net.Listen("unix", socket)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.Chmod(socket, 0o666); err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "query=%s\n", r.URL.RawQuery)
	})
	mux.HandleFunc("/md5", func(w http.ResponseWriter, r *http.Request) {
		digest := md5.New()
		if _, err := io.Copy(digest, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "md5=%x\n", digest.Sum(nil))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		total, err := number(r, "bytes", 1<<30)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		piece := make([]byte, chunk)
		for i := range piece {
			piece[i] = byte('a' + i%26)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		for total > 0 {
			n := chunk
			if total < n {
				n = total
			}
			if _, err := w.Write(piece[:n]); err != nil {
				return
			}
			total -= n
		}
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, err := number(r, "ms", 60000)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "slept %d\n", ms)
	})
	log.Printf("fcgi-peer-go: serving on %s", socket)
	log.Fatal(fcgi.Serve(listener, mux))
}
