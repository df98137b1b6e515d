//! What a real renderer draws, read back from its frames and recordings: scene
//! colours, baked panels following patches and edits, text that keeps inside its
//! card, and the built-in fonts and placeholder when started from an empty folder.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn colours_reach_the_recording_as_the_scene_gives_them() {
    // The frame is converted to I420 on the GPU before it is read back: a mistake in
    // the transfer function, the matrix or the plane layout shows up as wrong colours.
    let dir = tempfile::tempdir().expect("temp dir");
    let scenes = dir.path().join("scenes");
    std::fs::create_dir(&scenes).expect("scenes dir");
    std::fs::write(
        scenes.join("swatch.toml"),
        "title = \"Swatch\"\ncanvas = [640, 360]\nbackground = \"#1e64c8\"\n\n\
         [[layer]]\nid = \"left\"\nkind = \"panel\"\nat = [0, 0]\nsize = [320, 360]\ncolor = \"#d4b038\"\n\n\
         [[layer]]\nid = \"corner\"\nkind = \"panel\"\nat = [480, 0]\nsize = [160, 120]\ncolor = \"#f0f0f0\"\n",
    )
    .expect("write scene");
    let file = dir.path().join("swatch.mkv");
    let status = renderer(&["--frames", "12", "--output", file.to_str().expect("path")])
        .args(["--scenes", scenes.to_str().expect("path"), "--scene", "swatch"])
        .status()
        .expect("run");
    assert!(status.success());
    // The file's first frame is a drawn one (the background at least), never the
    // empty planes of a frame read back before anything was drawn.
    let first = frame_rgb(&file, 0);
    let at = ((300 * WIDTH + 400) * 3) as usize;
    let background = [first[at], first[at + 1], first[at + 2]];
    let off = background.iter().zip([0x1e, 0x64, 0xc8]).map(|(got, want)| got.abs_diff(want)).max();
    assert!(off <= Some(8), "the first frame's background is {background:?}");
    // The layers are spawned by the first update and drawn from the next frames on.
    // A middle frame, not the last ones: under load the last slots of a short
    // recording have come out black (their readbacks arrive after the channel
    // closed; twice now, once two slots deep), which is a shutdown matter of its own
    // (noted in issue 14), not a colour one.
    let rgb = frame_rgb(&file, 6);
    assert_eq!(rgb.len(), (WIDTH * HEIGHT * 3) as usize);
    let pixel = |x: u32, y: u32| {
        let at = ((y * WIDTH + x) * 3) as usize;
        [rgb[at], rgb[at + 1], rgb[at + 2]]
    };
    for (what, (x, y), want) in [
        ("panel", (160, 180), [0xd4, 0xb0, 0x38]),
        ("background", (400, 300), [0x1e, 0x64, 0xc8]),
        ("light corner", (560, 60), [0xf0, 0xf0, 0xf0]),
    ] {
        let got = pixel(x, y);
        let off = got.iter().zip(want).map(|(got, want)| got.abs_diff(want)).max().unwrap_or(0);
        assert!(off <= 8, "{what} at ({x}, {y}): got {got:?}, want {want:?}");
    }
}

#[test]
fn a_baked_panel_follows_patches_and_edits_on_air() {
    // The swatch's panels are still and at the back: they are drawn into the
    // backdrop once, and only a change of theirs redraws it.
    let dir = tempfile::tempdir().expect("temp dir");
    let scenes = dir.path().join("scenes");
    std::fs::create_dir(&scenes).expect("scenes dir");
    let swatch = |colour: &str| {
        format!(
            "title = \"Swatch\"\ncanvas = [640, 360]\nbackground = \"#1e64c8\"\n\n\
             [[layer]]\nid = \"left\"\nkind = \"panel\"\nat = [0, 0]\nsize = [320, 360]\nz = 1\ncolor = \"{colour}\"\n\n\
             [[layer]]\nid = \"corner\"\nkind = \"panel\"\nat = [480, 0]\nsize = [160, 120]\ncolor = \"#f0f0f0\"\n"
        )
    };
    std::fs::write(scenes.join("swatch.toml"), swatch("#d4b038")).expect("write scene");
    let show = Running::on_scene(dir.path(), &scenes, "swatch");
    let api = show.api();
    let (panel, background) = ((160, 180), (480, 180));
    wait_for_pixel(&api, panel, [0xd4, 0xb0, 0x38], "the panel never showed");
    wait_for_pixel(&api, background, [0x1e, 0x64, 0xc8], "the background never showed");
    let corner = (560, 60);
    wait_for_pixel(&api, corner, [0xf0, 0xf0, 0xf0], "the corner never showed");

    // An operator hides the panel: it leaves the backdrop, which is redrawn without it
    // (the corner, below it, stays baked, so frames still start from the backdrop).
    let auth = ("Authorization", format!("Bearer {}", token("operator")));
    let (code, body) = send(&api, "POST", "/api/stream/layers/left", &[auth], br#"{"visible": false}"#);
    assert_eq!(code, 200, "{body}");
    wait_for_pixel(&api, panel, [0x1e, 0x64, 0xc8], "the hidden panel is still drawn");
    wait_for_pixel(&api, corner, [0xf0, 0xf0, 0xf0], "the corner went");

    // The designer saves a new colour: the file's values win over the patch, and the
    // panel is baked again in its new colour.
    std::fs::write(scenes.join("swatch.toml"), swatch("#c81e28")).expect("edit scene");
    wait_for_pixel(&api, panel, [0xc8, 0x1e, 0x28], "the edited panel never showed");
    wait_for_pixel(&api, background, [0x1e, 0x64, 0xc8], "the background changed");
}

#[test]
fn a_long_result_line_and_title_stay_inside_their_card() {
    // A dark card on the left half and the blue background beside it; the texts are
    // far wider than the card at their font size.
    let dir = tempfile::tempdir().expect("temp dir");
    let scenes = dir.path().join("scenes");
    std::fs::create_dir(&scenes).expect("scenes dir");
    let scene = "title = \"Fit\"\ncanvas = [640, 360]\nbackground = \"#1e64c8\"\n\n\
        [[layer]]\nid = \"card\"\nkind = \"panel\"\nat = [0, 0]\nsize = [300, 360]\ncolor = \"#161922\"\n\n\
        [[layer]]\nid = \"result\"\nkind = \"text\"\nat = [20, 120]\nanchor = \"left\"\nfont_size = 60\n\
        color = \"#ffffff\"\nz = 2\ntext = \"SOLD to @a_very_long_handle for 123.456 ETH\"\nsize = [260, 80]\nfit = \"shrink\"\n\n\
        [[layer]]\nid = \"title\"\nkind = \"text\"\nat = [20, 260]\nanchor = \"left\"\nfont_size = 40\n\
        color = \"#ffffff\"\nz = 2\ntext = \"The Extraordinarily Long Title of a Lot Nobody Can Read\"\nsize = [260, 60]\nfit = \"ellipsis\"\n";
    std::fs::write(scenes.join("fit.toml"), scene).expect("write scene");
    let show = Running::on_scene(dir.path(), &scenes, "fit");
    let api = show.api();
    let background = [0x1e, 0x64, 0xc8];
    let near =
        |pixel: [u8; 3], want: [u8; 3]| pixel.iter().zip(want).all(|(got, want)| got.abs_diff(want) <= 24);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let frame = image::load_from_memory(&request(&api, "GET", "/api/stream/frame", &[], b"").1)
            .map(|image| image.to_rgb8());
        if let Ok(frame) = frame {
            // Text pixels (bright) inside the card, in each text's rows; none beside it.
            let bright = |x: u32, y: u32| frame.get_pixel(x, y).0.iter().all(|channel| *channel > 150);
            let inside = |rows: std::ops::Range<u32>| {
                rows.flat_map(|y| (0..300).map(move |x| (x, y))).filter(|(x, y)| bright(*x, *y)).count()
            };
            let (result, title) = (inside(80..160), inside(230..290));
            let outside = (0..360)
                .flat_map(|y| (304..640).map(move |x| (x, y)))
                .filter(|(x, y)| !near(frame.get_pixel(*x, *y).0, background))
                .count();
            if result > 50 && title > 50 && outside == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the texts never fitted their card: {result} and {title} text pixels inside, {outside} pixels beside it"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let layers = get(&api, "/api/stream/layers");
    let title = layers["data"]["layers"]
        .as_array()
        .and_then(|layers| layers.iter().find(|layer| layer["id"] == "title"))
        .and_then(|layer| layer["text"].as_str().map(str::to_owned))
        .expect("the title layer");
    assert!(title.ends_with('…') && title.starts_with("The Extra"), "the title is cut: {title:?}");
}

#[test]
fn started_from_an_empty_folder_the_default_scene_has_its_fonts_and_placeholder() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scenes = repo.join("scenes");
    let run = |cwd: &Path, assets: Option<&Path>| {
        let recording = cwd.join("show.mkv");
        let mut args = vec![
            "--fps".to_owned(),
            "15".to_owned(),
            "--output".to_owned(),
            recording.display().to_string(),
            "--scenes".to_owned(),
            scenes.display().to_string(),
            "--scene".to_owned(),
            "default".to_owned(),
        ];
        if let Some(assets) = assets {
            args.extend(["--assets".to_owned(), assets.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut command = renderer(&args);
        command.current_dir(cwd).env_remove("STREAM_ASSETS_DIR");
        let mut show = Running::spawn(command);
        let frame = settled_frame(&show.api());
        let _ = Command::new("kill").args(["-TERM", &show.child.id().to_string()]).status();
        let _ = show.child.wait();
        (frame, show.log())
    };
    let with_files = tempfile::tempdir().expect("dir");
    let (expected, _) = run(with_files.path(), Some(&repo.join("assets")));
    let empty = tempfile::tempdir().expect("dir");
    let (frame, log) = run(empty.path(), None);
    assert!(log.contains("the built-in fonts, lot placeholder and sounds are used"), "{log}");
    // The lot card's picture and its title line, at 640x360 (a third of the canvas).
    let (picture, title) = ((30, 58, 226, 186), (30, 252, 220, 24));
    let card = image::RgbImage::from_pixel(WIDTH, HEIGHT, image::Rgb([0x16, 0x19, 0x22]));
    assert!(region_distance(&frame, &card, picture) > 20.0, "the placeholder is drawn, not an empty card");
    let (picture_off, title_off) =
        (region_distance(&frame, &expected, picture), region_distance(&frame, &expected, title));
    assert!(picture_off < 3.0, "the same placeholder as the repository's: {picture_off:.2}");
    assert!(title_off < 3.0, "the title in the same font as with the repository's files: {title_off:.2}");
}
