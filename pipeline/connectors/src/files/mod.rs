//! File sources: a bounded [`FileSource`] over files read one after
//! another (what `finopsia import` reads), decoded by the core decoders.

use std::path::{Path, PathBuf};

use finopsia_core::error::{io_err, Error, Result};
use finopsia_core::input::{Chunk, FileDecoder, Format, Preset};
use finopsia_core::limits::Bounds;
use finopsia_core::source::Source;

/// A bounded source over files read one after another.
pub struct FileSource {
    name: String,
    files: Vec<(PathBuf, Format)>,
    preset: Preset,
    bounds: Bounds,
    current: Option<FileDecoder>,
    next: usize,
    done_bytes: u64,
    total_bytes: u64,
}

impl FileSource {
    /// Checks every file up front (readable, known format, CSV header maps),
    /// so a bad file fails the import before anything is written.
    pub fn new(
        name: &str,
        files: &[PathBuf],
        format: Option<Format>,
        preset: Preset,
        bounds: Bounds,
    ) -> Result<FileSource> {
        let mut checked = Vec::new();
        let mut total = 0;
        for path in files {
            let fmt =
                match format.or_else(|| Format::from_path(path)) {
                    Some(f) => f,
                    None => return Err(Error::Input {
                        file: path.display().to_string(),
                        message:
                            "cannot tell the format from the extension; pass --format csv|ndjson"
                                .into(),
                    }),
                };
            let meta = std::fs::metadata(path).map_err(io_err(path))?;
            if !meta.is_file() {
                return Err(Error::Input {
                    file: path.display().to_string(),
                    message: "not a regular file".into(),
                });
            }
            total += meta.len();
            FileDecoder::open(path, fmt, &preset, bounds, name)?;
            checked.push((path.clone(), fmt));
        }
        Ok(FileSource {
            name: name.to_string(),
            files: checked,
            preset,
            bounds,
            current: None,
            next: 0,
            done_bytes: 0,
            total_bytes: total,
        })
    }

    pub fn single(
        name: &str,
        path: &Path,
        format: Format,
        preset: Preset,
        bounds: Bounds,
    ) -> Result<FileSource> {
        Self::new(name, &[path.to_path_buf()], Some(format), preset, bounds)
    }
}

impl Source for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<Chunk>> {
        loop {
            if self.current.is_none() {
                let Some((path, fmt)) = self.files.get(self.next) else {
                    return Ok(None);
                };
                self.current = Some(FileDecoder::open(
                    path,
                    *fmt,
                    &self.preset,
                    self.bounds,
                    &self.name,
                )?);
                self.next += 1;
            }
            let decoder = self.current.as_mut().expect("decoder present");
            match decoder.next_chunk(max_rows)? {
                Some(mut chunk) => {
                    chunk.bytes_read += self.done_bytes;
                    return Ok(Some(chunk));
                }
                None => {
                    let (path, _) = &self.files[self.next - 1];
                    self.done_bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    self.current = None;
                }
            }
        }
    }

    fn bounded(&self) -> bool {
        true
    }

    fn progress(&self) -> (u64, Option<u64>) {
        (self.done_bytes, Some(self.total_bytes))
    }
}
