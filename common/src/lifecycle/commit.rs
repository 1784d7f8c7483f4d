//! `commit` and `images`: a container's files as a new image, and the
//! images there are (ch5 onwards).

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::container::{self, Container};
use crate::dataroot::{check_name, DataRoot};
use crate::error::{notice, Error, Result};
use crate::{image, mount, namespace, narrate, overlay};

pub fn commit(
    root: &DataRoot,
    name: &str,
    image_name: &str,
    output: Option<&Path>,
) -> Result<ExitCode> {
    let container = Container::existing(root, name)?;
    check_name("image", image_name)?;
    let images = root.dir("images")?;
    let dest = match output {
        Some(path) => path.to_path_buf(),
        None => images.join(format!("{image_name}.tar.gz")),
    };
    let taken = [format!("{image_name}.tar"), format!("{image_name}.tar.gz")]
        .iter()
        .any(|file| images.join(file).exists());
    if (output.is_none() && taken) || dest.exists() {
        return Err(Error::Conflict(format!(
            "image {image_name:?} already exists ({}): choose another name, or remove it",
            dest.display()
        )));
    }
    let _lock = container.lock()?;
    let state = container.state()?;
    let scratch = root.scratch("commit")?;
    let view = scratch.path().join("view");
    fs::create_dir(&view).map_err(|e| Error::io("creating", &view, e))?;
    let rootless = state.rootless;
    // 1. A mount namespace of our own: the view below is seen by nobody else.
    namespace::enter_private_mount_ns()?;
    // 2. The container's files as they are now: a read-only overlay of its
    //    upper over the image's layers. Its volumes, /proc and /dev are
    //    mounts in *its* namespace, so they are not in this view
    //    (docs/ch5-commit.md#commit).
    overlay::mount_readonly_view(&state.layers, &container.layout().upper, &view, rootless)?;
    // 3. Walk the view without following a symlink, into a gzip tarball
    //    written beside its destination...
    let partial = dest.with_file_name(format!(".{image_name}.partial.{}", std::process::id()));
    let written = write_image(&view, &partial);
    let unmounted = mount::unmount_detach(5, &view);
    // 4. ...and linked into place in one step, never over an existing image.
    //    Whatever failed, the partial file goes.
    let linked = written.and_then(|written| {
        unmounted?;
        fs::hard_link(&partial, &dest).map_err(|e| Error::io("writing image", &dest, e))?;
        Ok(written)
    });
    let _ = fs::remove_file(&partial);
    let written = linked?;
    narrate!(
        5,
        "committed {name}: {} entries, {} bytes of file data, into {}",
        written.entries,
        written.bytes,
        dest.display()
    );
    for skipped in &written.skipped {
        notice(format!(
            "not committed (a device node or socket): /{}",
            skipped.display()
        ));
    }
    println!("{}", dest.display());
    Ok(ExitCode::SUCCESS)
}

/// The tree at `view` as a gzip tarball in `path` (created, never overwritten).
fn write_image(view: &Path, path: &Path) -> Result<image::export::Exported> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io("creating", path, e))?;
    let mut gzip = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let written = image::export::write_tree(view, &mut gzip)?;
    gzip.finish()
        .and_then(|file| file.sync_all())
        .map_err(|e| Error::io("writing", path, e))?;
    Ok(written)
}

pub fn images(root: &DataRoot) -> Result<ExitCode> {
    let dir = root.dir("images")?;
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| Error::io("listing", &dir, e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    println!("{:<24}  {:>10}  {:>6}  CREATED", "NAME", "SIZE", "LAYERS");
    for path in files {
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(name) = file
            .strip_suffix(".tar.gz")
            .or_else(|| file.strip_suffix(".tar"))
        else {
            continue;
        };
        let meta = fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
        let created = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let layers = image::layer_count(&path).map_or("?".to_string(), |n| n.to_string());
        println!(
            "{:<24}  {:>10}  {:>6}  {}",
            name,
            human_size(meta.len()),
            layers,
            container::age(created)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `512 B`, `1.5 KiB`, `3.2 MiB`: a unit is left once its number would
/// round to 1024.
fn human_size(bytes: u64) -> String {
    let kib = bytes as f64 / 1024.0;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if kib < 1023.95 {
        format!("{kib:.1} KiB")
    } else {
        format!("{:.1} MiB", kib / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_change_unit_before_they_would_read_1024() {
        for (bytes, shown) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (1_048_524, "1023.9 KiB"),
            (1_048_575, "1.0 MiB"),
            (1_048_576, "1.0 MiB"),
            (5 * 1_048_576 + 1_048_576 / 2, "5.5 MiB"),
        ] {
            assert_eq!(human_size(bytes), shown, "{bytes}");
        }
    }
}
