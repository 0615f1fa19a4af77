//! PHP mode's routing: which file or script answers a decoded, normalised request path.
//!
//! As Caddy's `php_fastcgi` (`try_files {path} {path}/index.php index.php`, split on `.php`)
//! with nginx's safety lessons:
//!
//! 1. a segment starting with `.` (`.env`, `.git/config`, `.htaccess`) is 404 before any
//!    fallback: the front controller never sees it either;
//! 2. `/a.php/rest` splits after the first segment ending in `.php` followed by more path;
//!    the script part must be an existing regular file, else the front controller answers;
//! 3. an existing regular file runs when its name ends in `.php` (case-sensitive, as php-fpm's
//!    `security.limit_extensions`), and is sent as it is otherwise;
//! 4. a directory: its `index.php` runs, or its `index.html` is sent; without the trailing
//!    slash it is redirected (308) to the path with one; directories are never listed;
//! 5. anything else goes to the front controller `/index.php` when it exists, else 404.
//!
//! Only a regular file inside the document root counts as existing: a symbolic link is
//! followed when the path it resolves to is still inside the (canonical) document root, and
//! treated as missing otherwise. A static file with no symbolic link on its way is opened in
//! one step, the kernel holding it beneath the root (`openat2`), and routed already open; any
//! other path is looked at component by component. The index file and the split are the only
//! places a script name is made, so nothing the client sends can make php-fpm run a file that
//! is not a regular `.php` file here (the CVE-2019-11043 lesson).

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

/// The extension of files that run as scripts.
const SCRIPT_EXTENSION: &[u8] = b".php";
/// The file sent for a directory without an index script.
const STATIC_INDEX: &str = "index.html";

/// What answers a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// A file sent as it is.
    Static(StaticFile),
    /// A script run by the FastCGI server.
    Script {
        /// SCRIPT_NAME: the decoded path of the script from the document root.
        script_name: Vec<u8>,
        /// PATH_INFO: the rest of the path after the script (empty when none).
        path_info: Vec<u8>,
    },
    /// A directory named without its trailing slash: redirect to the path with one.
    AddSlash,
    /// Nothing to answer with: 404.
    NotFound,
}

/// A static file: its resolved path inside the document root, and the file itself when
/// routing opened it (then the file routed is the file sent, whatever happens to the path).
#[derive(Debug)]
pub struct StaticFile {
    pub path: PathBuf,
    pub opened: Option<(File, Metadata)>,
}

impl StaticFile {
    /// A file routed by its path only; it is opened when sent.
    pub fn at(path: PathBuf) -> StaticFile {
        StaticFile { path, opened: None }
    }
}

/// Routes are compared by what they name.
impl PartialEq for StaticFile {
    fn eq(&self, other: &StaticFile) -> bool {
        self.path == other.path
    }
}

impl Eq for StaticFile {}

/// The document root, canonical, and the index/front-controller file name.
#[derive(Debug, Clone)]
pub struct DocRoot {
    root: PathBuf,
    index: String,
    /// The root directory, opened once, for `openat2`; `None` if it could not be opened.
    dir: Option<Arc<OwnedFd>>,
}

impl DocRoot {
    /// `root` must be canonical (as `std::fs::canonicalize` returns it); `index` a plain file
    /// name.
    pub fn new(root: PathBuf, index: String) -> DocRoot {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_PATH | nix::libc::O_DIRECTORY)
            .open(&root)
            .ok()
            .map(|file| Arc::new(OwnedFd::from(file)));
        DocRoot { root, index, dir }
    }

    /// The canonical document root.
    #[cfg(test)]
    pub fn path(&self) -> &std::path::Path {
        &self.root
    }

    /// Routes a decoded, normalised path (`fcgi_cgi_env::normalize_path`): starts with `/`,
    /// no `.`/`..` or empty segments.
    pub fn route(&self, path: &[u8]) -> Route {
        if path.split(|b| *b == b'/').any(|segment| segment.starts_with(b".")) {
            return Route::NotFound;
        }
        if let Some((script, info)) = split_script(path) {
            if self.is_regular_file(script) {
                return Route::Script { script_name: script.to_vec(), path_info: info.to_vec() };
            }
            return self.front_controller();
        }
        if path.ends_with(b"/") {
            return self.directory(path).unwrap_or_else(|| self.front_controller());
        }
        if !path.ends_with(SCRIPT_EXTENSION) {
            if let Some(route) = self.open_static(path) {
                return route;
            }
        }
        match self.lookup(path) {
            Some((resolved, meta)) if meta.is_file() => {
                if path.ends_with(SCRIPT_EXTENSION) {
                    Route::Script { script_name: path.to_vec(), path_info: Vec::new() }
                } else {
                    Route::Static(StaticFile::at(resolved))
                }
            }
            Some((_, meta)) if meta.is_dir() => {
                let mut with_slash = path.to_vec();
                with_slash.push(b'/');
                match self.directory(&with_slash) {
                    Some(_) => Route::AddSlash,
                    None => self.front_controller(),
                }
            }
            _ => self.front_controller(),
        }
    }

    /// A directory path (ending in `/`): its index script, or its `index.html`.
    fn directory(&self, dir: &[u8]) -> Option<Route> {
        let script = [dir, self.index.as_bytes()].concat();
        if self.is_regular_file(&script) && script.ends_with(SCRIPT_EXTENSION) {
            return Some(Route::Script { script_name: script, path_info: Vec::new() });
        }
        let page = [dir, STATIC_INDEX.as_bytes()].concat();
        match self.lookup(&page) {
            Some((resolved, meta)) if meta.is_file() => Some(Route::Static(StaticFile::at(resolved))),
            _ => None,
        }
    }

    /// `/index.php` when it exists, else 404.
    fn front_controller(&self) -> Route {
        let script = [b"/", self.index.as_bytes()].concat();
        if script.ends_with(SCRIPT_EXTENSION) && self.is_regular_file(&script) {
            Route::Script { script_name: script, path_info: Vec::new() }
        } else {
            Route::NotFound
        }
    }

    /// A path that is not a script, in one step when it is a regular file with no symbolic
    /// link on the way: opened beneath the root by the kernel (`openat2` with
    /// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, non-blocking, so a FIFO does not hold the
    /// server), then described (`fstat`). Missing is missing, as for [`DocRoot::lookup`].
    /// `None` leaves the decision to the component-by-component way: a symbolic link on the
    /// way, a directory or other non-file, a refused open, a kernel without `openat2`.
    fn open_static(&self, path: &[u8]) -> Option<Route> {
        use nix::errno::Errno;
        use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
        let dir = self.dir.as_deref()?;
        let relative = path.strip_prefix(b"/").unwrap_or(path);
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        match openat2(dir, OsStr::from_bytes(relative), how) {
            Ok(fd) => {
                let file = File::from(fd);
                let meta = file.metadata().ok().filter(Metadata::is_file)?;
                let path = self.root.join(OsStr::from_bytes(relative));
                Some(Route::Static(StaticFile { path, opened: Some((file, meta)) }))
            }
            Err(Errno::ENOENT | Errno::ENOTDIR) => Some(self.front_controller()),
            Err(_) => None,
        }
    }

    fn is_regular_file(&self, path: &[u8]) -> bool {
        self.lookup(path).is_some_and(|(_, meta)| meta.is_file())
    }

    /// `path` under the root with every symbolic link resolved, and its metadata; `None` when
    /// it does not exist or resolves outside the root.
    fn lookup(&self, path: &[u8]) -> Option<(PathBuf, Metadata)> {
        let relative = path.strip_prefix(b"/").unwrap_or(path);
        let joined = self.root.join(OsStr::from_bytes(relative));
        // Without a symbolic link on the way (the common case) the joined path is already
        // canonical, and lstat's answer is the file's own: one system call.
        let meta = std::fs::symlink_metadata(&joined).ok()?;
        if !meta.file_type().is_symlink() && !self.has_symlinked_parent(relative) {
            return Some((joined, meta));
        }
        let canonical = std::fs::canonicalize(&joined).ok()?;
        if !canonical.starts_with(&self.root) {
            return None;
        }
        let meta = std::fs::metadata(&canonical).ok()?;
        Some((canonical, meta))
    }

    /// True when a directory on the way to `relative` is a symbolic link.
    fn has_symlinked_parent(&self, relative: &[u8]) -> bool {
        let mut at = self.root.clone();
        let mut segments = relative.split(|b| *b == b'/').filter(|s| !s.is_empty()).peekable();
        while let Some(segment) = segments.next() {
            if segments.peek().is_none() {
                break;
            }
            at.push(OsStr::from_bytes(segment));
            match std::fs::symlink_metadata(&at) {
                Ok(meta) if meta.file_type().is_symlink() => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }
}

/// Splits after the first segment ending in `.php` that is followed by more path:
/// `/a/b.php/c/d` → (`/a/b.php`, `/c/d`). `None` when there is no such segment.
pub fn split_script(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut start = 0;
    while let Some(at) = find(&path[start..], SCRIPT_EXTENSION) {
        let end = start + at + SCRIPT_EXTENSION.len();
        if path.get(end) == Some(&b'/')
            && end > SCRIPT_EXTENSION.len()
            && path[end - SCRIPT_EXTENSION.len() - 1] != b'/'
        {
            return Some(path.split_at(end));
        }
        start = end;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(name: &str, info: &str) -> Route {
        Route::Script { script_name: name.as_bytes().to_vec(), path_info: info.as_bytes().to_vec() }
    }

    /// A document root with a front controller, a script, assets, a directory with an index,
    /// one without, a dot file and symbolic links inside and outside.
    fn site() -> (tempfile::TempDir, tempfile::TempDir, DocRoot) {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (file, text) in [
            ("index.php", "<?php"),
            ("info.php", "<?php"),
            ("style.css", "body{}"),
            ("blog/index.php", "<?php"),
            ("docs/index.html", "<p>"),
            ("assets/app.js", "1"),
            (".env", "SECRET=1"),
            (".git/config", "x"),
            ("upload.PHP", "<?php"),
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir(root.join("empty")).unwrap();
        std::fs::create_dir(root.join("fake.php")).unwrap();
        std::fs::write(outside.path().join("secret.php"), "<?php").unwrap();
        std::fs::write(outside.path().join("passwd"), "root").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.php"), root.join("out.php")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("outdir")).unwrap();
        std::os::unix::fs::symlink(root.join("info.php"), root.join("alias.php")).unwrap();
        std::os::unix::fs::symlink(root.join("assets"), root.join("static")).unwrap();
        let canonical = std::fs::canonicalize(root).unwrap();
        (dir, outside, DocRoot::new(canonical, "index.php".into()))
    }

    #[test]
    fn scripts_static_files_and_the_front_controller() {
        let (_dir, _outside, docroot) = site();
        let root = docroot.path().to_path_buf();
        assert_eq!(docroot.route(b"/info.php"), script("/info.php", ""));
        assert_eq!(docroot.route(b"/info.php/a/b"), script("/info.php", "/a/b"));
        assert_eq!(docroot.route(b"/"), script("/index.php", ""));
        assert_eq!(docroot.route(b"/style.css"), Route::Static(StaticFile::at(root.join("style.css"))));
        assert_eq!(docroot.route(b"/blog/"), script("/blog/index.php", ""));
        assert_eq!(docroot.route(b"/blog"), Route::AddSlash);
        assert_eq!(docroot.route(b"/docs/"), Route::Static(StaticFile::at(root.join("docs/index.html"))));
        assert_eq!(docroot.route(b"/docs"), Route::AddSlash);
        // No listing: a directory without an index goes to the front controller.
        assert_eq!(docroot.route(b"/empty/"), script("/index.php", ""));
        assert_eq!(docroot.route(b"/empty"), script("/index.php", ""));
        // Pretty URLs and missing files: the front controller, with the original URI.
        assert_eq!(docroot.route(b"/users/42"), script("/index.php", ""));
        assert_eq!(docroot.route(b"/missing.php"), script("/index.php", ""));
        assert_eq!(docroot.route(b"/missing.php/x"), script("/index.php", ""));
        assert_eq!(docroot.route(b"/style.css/x.php"), script("/index.php", ""));
    }

    #[test]
    fn only_regular_php_files_inside_the_root_run() {
        let (_dir, _outside, docroot) = site();
        // CVE-2019-11043's shape: a non-script with a .php path after it is not run.
        assert_eq!(docroot.route(b"/style.css/.php"), Route::NotFound);
        assert_eq!(docroot.route(b"/assets/app.js/x.php"), script("/index.php", ""));
        // A directory named like a script is not a script.
        assert_eq!(docroot.route(b"/fake.php/x"), script("/index.php", ""));
        assert_eq!(docroot.route(b"/fake.php"), script("/index.php", ""));
        // The extension is case-sensitive, as php-fpm's limit_extensions: sent as a file.
        assert!(matches!(docroot.route(b"/upload.PHP"), Route::Static(_)));
        // Symbolic links: inside the root followed, outside treated as missing.
        assert_eq!(docroot.route(b"/alias.php"), script("/alias.php", ""));
        assert_eq!(docroot.route(b"/out.php"), script("/index.php", ""));
        assert_eq!(docroot.route(b"/outdir/passwd"), script("/index.php", ""));
        assert_eq!(docroot.route(b"/outdir/secret.php"), script("/index.php", ""));
        let root = docroot.path().to_path_buf();
        assert_eq!(
            docroot.route(b"/static/app.js"),
            Route::Static(StaticFile::at(root.join("assets/app.js")))
        );
    }

    #[test]
    fn a_plain_file_is_routed_open_and_a_linked_one_by_its_resolved_path() {
        let (dir, outside, docroot) = site();
        let root = docroot.path().to_path_buf();
        // No symbolic link on the way: opened while routing.
        let Route::Static(file) = docroot.route(b"/assets/app.js") else { panic!() };
        assert_eq!(file.path, root.join("assets/app.js"));
        assert!(file.opened.is_some_and(|(_, meta)| meta.len() == 1));
        // Through a linked directory: resolved the slow way, opened when sent.
        let Route::Static(file) = docroot.route(b"/static/app.js") else { panic!() };
        assert_eq!((file.path, file.opened.is_none()), (root.join("assets/app.js"), true));
        // A file linked from outside, and a FIFO, are not files to send.
        std::os::unix::fs::symlink(outside.path().join("passwd"), dir.path().join("passwd.txt")).unwrap();
        assert_eq!(docroot.route(b"/passwd.txt"), script("/index.php", ""));
        let made = std::process::Command::new("mkfifo").arg(dir.path().join("pipe.css")).status().unwrap();
        assert!(made.success());
        assert_eq!(docroot.route(b"/pipe.css"), script("/index.php", ""));
        // Missing is missing, under a file too.
        assert_eq!(docroot.route(b"/nothing.css"), script("/index.php", ""));
        assert_eq!(docroot.route(b"/style.css/more.css"), script("/index.php", ""));
    }

    #[test]
    fn dot_segments_are_404_before_any_fallback() {
        let (_dir, _outside, docroot) = site();
        for path in [
            &b"/.env"[..],
            b"/.git/config",
            b"/.git/",
            b"/a/.hidden/index.php",
            b"/.missing",
            b"/x/.env.php/y",
        ] {
            assert_eq!(docroot.route(path), Route::NotFound, "{}", String::from_utf8_lossy(path));
        }
    }

    #[test]
    fn without_a_front_controller_missing_is_404() {
        let (_dir, _outside, docroot) = site();
        let docroot = DocRoot::new(docroot.path().to_path_buf(), "main.php".into());
        assert_eq!(docroot.route(b"/users/42"), Route::NotFound);
        assert_eq!(docroot.route(b"/blog/"), Route::NotFound);
        assert_eq!(docroot.route(b"/info.php"), script("/info.php", ""));
    }

    #[test]
    fn splits() {
        assert_eq!(split_script(b"/a/b.php/c/d"), Some((&b"/a/b.php"[..], &b"/c/d"[..])));
        assert_eq!(split_script(b"/a.php/b.php/c"), Some((&b"/a.php"[..], &b"/b.php/c"[..])));
        assert_eq!(split_script(b"/a.php"), None);
        assert_eq!(split_script(b"/a.phpx/b"), None);
        assert_eq!(split_script(b"/a.PHP/b"), None);
        // A segment that is only ".php" is not a script name.
        assert_eq!(split_script(b"/.php/b"), None);
        assert_eq!(split_script(b"/x.php.php/y"), Some((&b"/x.php.php"[..], &b"/y"[..])));
    }
}
