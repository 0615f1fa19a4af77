//! `--filter-data @FILE|@-`: the file a Filter filters (FastCGI specification §6.4), streamed as
//! FCGI_DATA in bounded memory.
//!
//! FastCGI needs the stream's length before it starts (FCGI_DATA_LENGTH), so the source must be
//! something whose length is known:
//!
//! - `@FILE`: a regular file, read from its start in 64 KiB chunks while it is sent;
//!   FCGI_DATA_LAST_MOD is its mtime in seconds since the epoch.
//! - `@-`: standard input. When it is a regular file (`< file`), it is used as `@FILE` from the
//!   current offset. Otherwise (a pipe, a terminal) it is first copied, in 64 KiB chunks, into
//!   an unnamed temporary file (`O_TMPFILE` where the system has it: no name in any directory,
//!   so nothing is left behind on any exit path, a signal or a crash included), then sent from
//!   there; FCGI_DATA_LAST_MOD is the time the copy ended. Memory stays bounded either way; the
//!   disk holds one copy of the data.
//!
//! The length is taken once, when the file is opened: a file that grows meanwhile sends only
//! that many bytes, one that shrinks fails the request ("got shorter while it was sent").

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use crate::exit::{Exit, Failure};

/// Bytes read from the file per FCGI_DATA chunk.
const CHUNK: usize = 64 * 1024;

/// The Filter's data file, opened, its length and modification time known.
pub struct FilterData {
    file: File,
    /// Bytes to send (FCGI_DATA_LENGTH).
    pub length: u64,
    /// FCGI_DATA_LAST_MOD: seconds since the epoch.
    pub last_mod: u64,
    /// Where it comes from, for messages.
    pub source: String,
}

impl FilterData {
    /// Opens `@FILE` or `@-` (see the module docs).
    pub fn open(spec: &str) -> Result<FilterData, Failure> {
        let Some(source) = spec.strip_prefix('@') else {
            return Err(Failure::new(
                Exit::Usage,
                format!("--filter-data takes @FILE or @- (standard input), not {spec:?}"),
            ));
        };
        if source.is_empty() {
            return Err(Failure::new(
                Exit::Usage,
                "--filter-data @ needs a file name (or @- for standard input)",
            ));
        }
        if source == "-" {
            return from_stdin();
        }
        let what = format!("filter data file {source}");
        let file = File::open(source).map_err(|err| read_error(&what, &err))?;
        from_file(file, what)
    }

    /// The FCGI_DATA stream: exactly [`length`](FilterData::length) bytes.
    pub fn into_body(self) -> FileBody {
        FileBody {
            file: tokio::fs::File::from_std(self.file),
            left: self.length,
            buf: vec![0; CHUNK],
            source: self.source,
        }
    }
}

/// Opens a regular file for sending from its current offset.
fn from_file(mut file: File, what: String) -> Result<FilterData, Failure> {
    let meta = file.metadata().map_err(|err| read_error(&what, &err))?;
    if !meta.is_file() {
        return Err(Failure::new(
            Exit::Read,
            format!(
                "cannot use {what}: not a regular file (its length must be known before sending; use @- to spool it)"
            ),
        ));
    }
    let offset = file.stream_position().map_err(|err| read_error(&what, &err))?;
    let last_mod = meta.modified().map(epoch_seconds).unwrap_or(0);
    Ok(FilterData { file, length: meta.len().saturating_sub(offset), last_mod, source: what })
}

/// Standard input: used in place when it is a regular file, else spooled.
fn from_stdin() -> Result<FilterData, Failure> {
    use std::os::fd::AsFd;
    let what = "standard input".to_string();
    let owned = io::stdin().as_fd().try_clone_to_owned().map_err(|err| read_error(&what, &err))?;
    let stdin = File::from(owned);
    if stdin.metadata().is_ok_and(|meta| meta.is_file()) {
        return from_file(stdin, what);
    }
    let mut spool = tempfile::tempfile().map_err(|err| {
        Failure::new(Exit::Write, format!("cannot create a temporary file to hold standard input: {err}"))
    })?;
    let length = copy_chunked(&mut io::stdin().lock(), &mut spool).map_err(|err| match err {
        Copy::Read(err) => read_error(&what, &err),
        Copy::Write(err) => {
            Failure::new(Exit::Write, format!("cannot spool standard input to a temporary file: {err}"))
        }
    })?;
    spool.seek(SeekFrom::Start(0)).map_err(|err| {
        Failure::new(Exit::Write, format!("cannot read back the spooled standard input: {err}"))
    })?;
    Ok(FilterData { file: spool, length, last_mod: epoch_seconds(SystemTime::now()), source: what })
}

enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `from` into `to` through one [`CHUNK`]-sized buffer; returns the bytes copied.
fn copy_chunked(from: &mut impl Read, to: &mut impl Write) -> Result<u64, Copy> {
    let mut buf = vec![0; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Copy::Read(err)),
        };
        to.write_all(&buf[..n]).map_err(Copy::Write)?;
        total += n as u64;
    }
    to.flush().map_err(Copy::Write)?;
    Ok(total)
}

fn epoch_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn read_error(what: &str, err: &io::Error) -> Failure {
    Failure::new(Exit::Read, format!("cannot read {what}: {err}"))
}

/// The file as an [`http_body::Body`] of exactly its length, read chunk by chunk as the
/// connection asks for more.
pub struct FileBody {
    file: tokio::fs::File,
    left: u64,
    buf: Vec<u8>,
    source: String,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.left).unwrap_or(usize::MAX).min(CHUNK);
        let mut read = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => {
                Poll::Ready(Some(Err(io::Error::new(err.kind(), format!("reading {}: {err}", this.source)))))
            }
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} got shorter while it was sent ({} bytes missing)", this.source, this.left),
            )))),
            Poll::Ready(Ok(())) => {
                let chunk = Bytes::copy_from_slice(read.filled());
                this.left -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_other_than_files_are_refused_with_a_reason() {
        for (spec, exit, why) in [
            ("data.txt", Exit::Usage, "takes @FILE or @-"),
            ("@", Exit::Usage, "needs a file name"),
            ("@/nonexistent/fcgi-filter-data", Exit::Read, "cannot read filter data file /nonexistent"),
            ("@/", Exit::Read, "not a regular file"),
        ] {
            let err = FilterData::open(spec).err().unwrap_or_else(|| panic!("{spec} was accepted"));
            assert_eq!(err.exit, exit, "{spec}: {}", err.message);
            assert!(err.message.contains(why), "{spec}: {}", err.message);
        }
    }

    #[test]
    fn a_file_gives_its_length_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, b"0123456789").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let data = FilterData::open(&format!("@{}", path.display())).unwrap();
        assert_eq!((data.length, data.last_mod), (10, epoch_seconds(mtime)));
        assert!(data.last_mod > 1_600_000_000, "seconds since the epoch");
    }

    #[tokio::test]
    async fn the_body_streams_the_whole_file_in_chunks_of_at_most_64_kib() {
        use http_body_util::BodyExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let content: Vec<u8> = (0..CHUNK * 2 + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let mut body = FilterData::open(&format!("@{}", path.display())).unwrap().into_body();
        assert_eq!(body.size_hint().exact(), Some(content.len() as u64));
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            let chunk = frame.unwrap().into_data().unwrap();
            assert!(chunk.len() <= CHUNK);
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, content);
    }

    #[tokio::test]
    async fn a_file_that_shrinks_while_sent_is_an_error() {
        use http_body_util::BodyExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, vec![b'x'; 100]).unwrap();
        let mut body = FilterData::open(&format!("@{}", path.display())).unwrap().into_body();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(40).unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), 40);
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("got shorter while it was sent (60 bytes missing)"), "{err}");
    }

    #[test]
    fn spooling_copies_everything() {
        let content: Vec<u8> = (0..CHUNK * 3 + 1).map(|i| i as u8).collect();
        let mut out = Vec::new();
        let copied = copy_chunked(&mut &content[..], &mut out).ok().unwrap();
        assert_eq!((copied, out), (content.len() as u64, content));
    }
}
