//! A real browser through `fcgi serve`: Debian's headless Chromium loads the test application's
//! page (HTML from the front controller, CSS, JavaScript and an SVG image as static files) and
//! the screenshot shows all four worked: the stylesheet's blue background, the red image, and
//! the title the script turned yellow.

use std::process::Command;

use super::serve_support::{Serve, text};

#[test]
fn chromium_renders_the_page_with_its_assets() {
    let serve = Serve::app(&[]);
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("page.png");
    let output = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=400,300"])
        .arg(format!("--user-data-dir={}", text(&dir.path().join("profile"))))
        .arg(format!("--screenshot={}", text(&shot)))
        .arg(serve.url("/"))
        .output()
        .expect("run chromium (the Debian package chromium)");
    assert!(shot.is_file(), "no screenshot: {}", String::from_utf8_lossy(&output.stderr));

    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let step = match frame.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected colour type {other:?}"),
    };
    let (mut blue, mut red, mut yellow) = (0usize, 0usize, 0usize);
    let total = (frame.width * frame.height) as usize;
    for px in pixels[..frame.buffer_size()].chunks(step) {
        match (px[0], px[1], px[2]) {
            (0..=20, 0..=20, 235..) => blue += 1,
            (235.., 0..=20, 0..=20) => red += 1,
            (235.., 235.., 0..=20) => yellow += 1,
            _ => {}
        }
    }
    // The image is 200x200 of 400x300; the background is most of the rest; the title is text.
    assert!(red >= 200 * 200 * 9 / 10, "red (the SVG) {red} of {total}");
    assert!(blue >= total / 4, "blue (the CSS background) {blue} of {total}");
    assert!(yellow >= 500, "yellow (the title coloured by JavaScript) {yellow} of {total}");
    let log = serve.access_log(4);
    for asset in ["GET / ", "GET /assets/style.css ", "GET /assets/app.js ", "GET /assets/logo.svg "] {
        assert!(log.contains(&format!("\"{asset}HTTP/1.1\" 200 ")), "{asset} in {log}");
    }
}
