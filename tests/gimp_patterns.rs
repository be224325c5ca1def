//! tools/gimp_patterns.py (GIMP .pat → tiled PNG style images, standard-library Python): pattern
//! files built here byte by byte in each pixel format, converted by the script, and decoded back
//! with the `image` crate (a PNG decoder the script does not share). Needs only `python3`.
//!
//! Checked: grey, grey+alpha, RGB and RGBA pixels (alpha over mid grey), whole-tile repetition up
//! to `--tile`, output names `<folder>-<file>.png`, `--skip-dir`, and that malformed files (bad
//! magic, version, depth, pixels cut short) are skipped with a reason while the others convert.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A .pat file: header (size, version, width, height, depth, "GPAT", name NUL) then pixels.
fn pattern(width: u32, height: u32, depth: u32, pixels: &[u8]) -> Vec<u8> {
    let name = b"test pattern\0";
    let header = 24 + name.len() as u32;
    let mut v = Vec::new();
    for x in [header, 1, width, height, depth] {
        v.extend(x.to_be_bytes());
    }
    v.extend(b"GPAT");
    v.extend(name);
    v.extend(pixels);
    v
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/gimp_patterns.py")
}

fn run(args: &[&Path], extra: &[&str]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(script())
        .args(args)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e} (install Python 3)"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn converts_every_pixel_format_and_tiles() {
    let root = std::env::temp_dir().join(format!("engine-gimp-pat-{}", std::process::id()));
    std::fs::remove_dir_all(&root).ok();
    let (wood, legacy, out) = (root.join("Wood"), root.join("Legacy"), root.join("out"));
    std::fs::create_dir_all(&wood).unwrap();
    std::fs::create_dir_all(&legacy).unwrap();
    // 3×2 patterns with distinct values per pixel.
    let grey: Vec<u8> = (0..6).map(|i| 10 + 40 * i).collect();
    let grey_alpha: Vec<u8> = (0..6).flat_map(|i| [200, 51 * i]).collect();
    let rgb: Vec<u8> = (0..18).map(|i| (i * 13 + 5) as u8).collect();
    let rgba: Vec<u8> = (0..6)
        .flat_map(|i| [i * 40, 255 - i * 40, 7, if i % 2 == 0 { 255 } else { 0 }])
        .collect();
    let files = [
        (wood.join("grey.pat"), pattern(3, 2, 1, &grey)),
        (wood.join("greya.pat"), pattern(3, 2, 2, &grey_alpha)),
        (wood.join("rgb.pat"), pattern(3, 2, 3, &rgb)),
        (wood.join("rgba.pat"), pattern(3, 2, 4, &rgba)),
        (legacy.join("skipped.pat"), pattern(3, 2, 1, &grey)),
        (wood.join("short.pat"), pattern(3, 2, 3, &rgb[..17])),
        (wood.join("magic.pat"), {
            let mut p = pattern(3, 2, 1, &grey);
            p[20] = b'X';
            p
        }),
        (wood.join("version.pat"), {
            let mut p = pattern(3, 2, 1, &grey);
            p[7] = 2;
            p
        }),
        (wood.join("depth.pat"), pattern(3, 2, 5, &[0; 30])),
    ];
    for (p, bytes) in &files {
        std::fs::write(p, bytes).unwrap();
    }
    let paths: Vec<&Path> = std::iter::once(out.as_path())
        .chain(files.iter().map(|(p, _)| p.as_path()))
        .collect();
    let (ok, text) = run(&paths, &["--tile", "7", "--skip-dir", "Legacy"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("wrote 4 PNGs") && text.contains("skipped 4"),
        "{text}"
    );
    for (name, reason) in [
        ("short.pat", "needs 18 pixel bytes, file has 17"),
        ("magic.pat", "no GPAT magic"),
        ("version.pat", "version 2"),
        ("depth.pat", "5 bytes per pixel"),
    ] {
        assert!(
            text.lines().any(|l| l.contains(name) && l.contains(reason)),
            "{name}: {text}"
        );
    }
    let mut made: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(
        made,
        [
            "Wood-grey.png",
            "Wood-greya.png",
            "Wood-rgb.png",
            "Wood-rgba.png"
        ]
    );
    // The expected RGB of pattern pixel (x, y), from the formats' definitions.
    let over_grey = |c: u32, a: u32| ((c * a + 128 * (255 - a) + 127) / 255) as u8;
    let expect = |file: &str, i: usize| -> [u8; 3] {
        match file {
            "Wood-grey.png" => [grey[i]; 3],
            "Wood-greya.png" => {
                [over_grey(grey_alpha[2 * i] as u32, grey_alpha[2 * i + 1] as u32); 3]
            }
            "Wood-rgb.png" => [rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]],
            _ => {
                let p = &rgba[4 * i..4 * i + 4];
                [0, 1, 2].map(|c| over_grey(p[c] as u32, p[3] as u32))
            }
        }
    };
    for file in &made {
        let img = image::open(out.join(file)).unwrap().to_rgb8();
        // Tiled whole: 3 → 9 wide (≥ 7), 2 → 8 high.
        assert_eq!(img.dimensions(), (9, 8), "{file}");
        for y in 0..8 {
            for x in 0..9 {
                let i = (y % 2) * 3 + x % 3;
                assert_eq!(
                    img.get_pixel(x as u32, y as u32).0,
                    expect(file, i),
                    "{file} ({x}, {y})"
                );
            }
        }
    }
    // Nothing usable: a failing exit status.
    let (ok, text) = run(&[out.as_path(), &wood.join("magic.pat")], &[]);
    assert!(!ok, "{text}");
    std::fs::remove_dir_all(&root).ok();
}
