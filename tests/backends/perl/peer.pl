#!/usr/bin/perl
# A Perl FCGI (libfcgi) application for the real-peer matrix of the fcgi tests, started by
# `cargo xtask test` under spawn-fcgi (xtask/src/peers.rs): spawn-fcgi hands it the
# listening socket as file descriptor 0; it forks 4 workers that accept on it, and stops them
# on SIGTERM. Routes on PATH_INFO (send `--mount /`); every role of the specification:
#
# Responder
#   /echo          body "query=<QUERY_STRING>\n"
#   /md5           body "md5=<hex>\n": the md5 of the request body (CONTENT_LENGTH bytes)
#   /big?bytes=N   N bytes (at most 1 GiB) of a..z in 64 KiB writes
#   /sleep?ms=N    sleeps N ms (at most 60000), then "slept N\n"
# Authorizer (FCGI_ROLE=AUTHORIZER, no PATH_INFO: decides on QUERY_STRING)
#   "allow"        no Status line, Variable-REMOTE_USER: carol: authorized
#   otherwise      Status: 403 Forbidden, body "denied\n"
# Filter (FCGI_ROLE=FILTER): reads the body, then the FCGI_DATA stream (StartFilterData), and
#   answers "FCGI_DATA_LENGTH=N\nFCGI_DATA_LAST_MOD=M\ndata_md5=<hex>\ndata_bytes=N\n"
use strict;
use warnings;
use FCGI;
use IO::Handle;
use Digest::MD5;
use Time::HiRes qw(usleep);

my $WORKERS = 4;
my $CHUNK = 65536;

sub number {
    my ($query, $name, $limit) = @_;
    return 0 unless $query =~ /(?:^|&)\Q$name\E=([^&]*)/;
    my $value = $1;
    die "$name is not a number\n" unless $value =~ /^\d+$/ && $value <= $limit;
    return $value;
}

# md5 and length of at most $left bytes of $in.
sub md5_of {
    my ($in, $left) = @_;
    my $digest = Digest::MD5->new;
    my $total = 0;
    while (!defined $left || $left > 0) {
        my $want = defined $left && $left < $CHUNK ? $left : $CHUNK;
        my $n = read($in, my $buf, $want);
        last unless $n;
        $digest->add($buf);
        $total += $n;
        $left -= $n if defined $left;
    }
    return ($digest->hexdigest, $total);
}

sub serve {
    my ($in, $out, $err) = (IO::Handle->new, IO::Handle->new, IO::Handle->new);
    my %env;
    my $request = FCGI::Request($in, $out, $err, \%env, 0, 0);
    while ($request->Accept() >= 0) {
        my $role = $env{FCGI_ROLE} // '';
        my $query = $env{QUERY_STRING} // '';
        binmode $out;
        if ($role eq 'AUTHORIZER') {
            if ($query eq 'allow') {
                print $out "Variable-REMOTE_USER: carol\r\n\r\n";
            } else {
                print $out "Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\ndenied\n";
            }
            next;
        }
        if ($role eq 'FILTER') {
            md5_of($in, $env{CONTENT_LENGTH} || 0);
            md5_of($in, undef);    # the rest of STDIN, to its end
            $request->StartFilterData();
            my ($md5, $bytes) = md5_of($in, $env{FCGI_DATA_LENGTH} || 0);
            print $out "Content-Type: text/plain\r\n\r\n";
            print $out "FCGI_DATA_LENGTH=", $env{FCGI_DATA_LENGTH} // '<absent>', "\n";
            print $out "FCGI_DATA_LAST_MOD=", $env{FCGI_DATA_LAST_MOD} // '<absent>', "\n";
            print $out "data_md5=$md5\ndata_bytes=$bytes\n";
            next;
        }
        my $path = $env{PATH_INFO} // '';
        my $body = eval {
            if ($path eq '/echo') {
                "Content-Type: text/plain\r\n\r\nquery=$query\n";
            } elsif ($path eq '/md5') {
                my ($md5) = md5_of($in, $env{CONTENT_LENGTH} || 0);
                "Content-Type: text/plain\r\n\r\nmd5=$md5\n";
            } elsif ($path eq '/big') {
                my $left = number($query, 'bytes', 1 << 30);
                print $out "Content-Type: application/octet-stream\r\n\r\n";
                my $piece = substr('abcdefghijklmnopqrstuvwxyz' x 2521, 0, $CHUNK);
                while ($left > 0) {
                    my $n = $left < $CHUNK ? $left : $CHUNK;
                    print $out substr($piece, 0, $n);
                    $left -= $n;
                }
                '';
            } elsif ($path eq '/sleep') {
                my $ms = number($query, 'ms', 60000);
                usleep($ms * 1000);
                "Content-Type: text/plain\r\n\r\nslept $ms\n";
            } else {
                "Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno such route\n";
            }
        };
        $body = "Status: 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nbad request: $@" unless defined $body;
        print $out $body;
    }
}

my @children;
for (1 .. $WORKERS) {
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        serve();
        exit 0;
    }
    push @children, $pid;
}
$SIG{TERM} = $SIG{INT} = sub { kill 'TERM', @children; exit 0 };
print STDERR "peer.pl: $WORKERS workers\n";
1 while wait() != -1;
