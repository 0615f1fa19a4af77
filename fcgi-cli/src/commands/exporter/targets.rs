//! Which pools a scrape asks: the fixed ones (`--socket`, `--connect`) and the sockets found in
//! `--socket-dir` at that scrape (names matching `--socket-glob`, symlinks followed, each
//! reported under the path found in the directory).

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use fcgi_mux::Address;

/// The pools of one scrape, and why the directory could not be read (if it could not).
#[derive(Debug, Default)]
pub struct Found {
    /// Fixed pools first, then the directory's in name order.
    pub addresses: Vec<Address>,
    /// The error reading `--socket-dir`, one line.
    pub dir_error: Option<String>,
}

/// Lists the pools: `fixed`, then every socket in `dir` whose name matches `glob`.
pub fn discover(fixed: &[Address], dir: Option<&Path>, glob: &str) -> Found {
    let mut found = Found { addresses: fixed.to_vec(), dir_error: None };
    let Some(dir) = dir else { return found };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            found.dir_error = Some(format!("cannot list --socket-dir {}: {err}", dir.display()));
            return found;
        }
    };
    let mut sockets: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| matches(glob, name)))
        .map(|entry| entry.path())
        // metadata() follows symlinks: a link to a socket is a pool, a dangling one is not.
        .filter(|path| std::fs::metadata(path).is_ok_and(|meta| meta.file_type().is_socket()))
        .collect();
    sockets.sort();
    for socket in sockets {
        if !found.addresses.iter().any(|known| *known == Address::Unix(socket.clone())) {
            found.addresses.push(Address::Unix(socket));
        }
    }
    found
}

/// Shell-style wildcard match of a whole name: `*` any run of characters, `?` one character,
/// everything else itself.
pub fn matches(glob: &str, name: &str) -> bool {
    let glob: Vec<char> = glob.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if g < glob.len() && (glob[g] == '?' || glob[g] == name[n]) {
            g += 1;
            n += 1;
        } else if g < glob.len() && glob[g] == '*' {
            star = Some((g, n));
            g += 1;
        } else if let Some((star_g, star_n)) = star {
            g = star_g + 1;
            n = star_n + 1;
            star = Some((star_g, star_n + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("*.sock", "www.sock"));
        assert!(matches("*.sock", ".sock"));
        assert!(!matches("*.sock", "www.sock.bak"));
        assert!(matches("php*-fpm?.sock", "php8.2-fpm1.sock"));
        assert!(!matches("php?.sock", "php.sock"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
    }

    #[test]
    fn a_directory_lists_sockets_only_through_links_too() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&real).unwrap();
        std::fs::write(dir.path().join("file.sock"), b"not a socket").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link.sock")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("dangling.sock")).unwrap();
        let _other = std::os::unix::net::UnixListener::bind(dir.path().join("other.socket")).unwrap();
        let found = discover(&[], Some(dir.path()), "*.sock");
        assert_eq!(
            found.addresses,
            vec![Address::Unix(dir.path().join("link.sock")), Address::Unix(real.clone())],
            "under the names found in the directory, sorted"
        );
        let fixed = [Address::Unix(real.clone())];
        assert_eq!(discover(&fixed, Some(dir.path()), "real*").addresses, fixed.to_vec(), "no duplicate");
        let missing = discover(&fixed, Some(&dir.path().join("nope")), "*");
        assert_eq!(missing.addresses, fixed.to_vec());
        assert!(missing.dir_error.unwrap().contains("cannot list --socket-dir"));
    }
}
