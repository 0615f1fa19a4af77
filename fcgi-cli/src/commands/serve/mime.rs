//! Content-Type from a file name's extension: the types a web site's assets use (nginx's
//! `mime.types` for these extensions), `application/octet-stream` for the rest. Text types say
//! `charset=utf-8`, as Caddy does.

use std::path::Path;

/// The Content-Type of the file at `path`.
pub fn content_type(path: &Path) -> &'static str {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match extension.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "text/xml; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "bmp" => "image/bmp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_extension() {
        assert_eq!(content_type(Path::new("/a/style.css")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("/a/LOGO.PNG")), "image/png");
        assert_eq!(content_type(Path::new("/a/app.js")), "text/javascript; charset=utf-8");
        assert_eq!(content_type(Path::new("/a/README")), "application/octet-stream");
        assert_eq!(content_type(Path::new("/a/x.php.bak")), "application/octet-stream");
    }
}
