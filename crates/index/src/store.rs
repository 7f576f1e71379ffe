//! One datanet's segments on disk: a directory of segment files and a `MANIFEST` naming the ones in
//! use, replaced atomically (write a temporary file, rename). Files not in the manifest are
//! leftovers of an interrupted build or merge and are deleted.

use std::path::Path;
use std::sync::Arc;

use crate::segment::Segment;
use crate::{IndexError, version_of};

const MANIFEST: &str = "MANIFEST";
const MANIFEST_HEADER: &str = "tributary-index-manifest 1";

/// The segments of one datanet, and what they cover.
#[derive(Clone, Debug, Default)]
pub struct SegmentSet {
    pub segments: Vec<Arc<Segment>>,
    /// The highest contribution id indexed (contributions are indexed in id order).
    pub indexed_through: u64,
    pub contributions: u64,
}

impl SegmentSet {
    pub fn version(&self) -> String {
        let ids: Vec<[u8; 32]> = self.segments.iter().map(|s| s.id()).collect();
        version_of(&ids)
    }
}

/// Reads the manifest in `dir` and opens its segments (checking headers and small sections).
/// A missing manifest is an empty set; any problem is an error, and the caller rebuilds.
pub fn load(dir: &Path) -> Result<SegmentSet, IndexError> {
    let manifest = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&manifest) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(SegmentSet::default()),
        Err(error) => return Err(IndexError::io(&manifest, error)),
    };
    let corrupt = |reason: &str| IndexError::Corrupt { path: manifest.clone(), reason: reason.to_owned() };
    let mut lines = text.lines();
    if lines.next() != Some(MANIFEST_HEADER) {
        return Err(corrupt("unknown manifest header"));
    }
    let mut set = SegmentSet::default();
    for line in lines {
        let name = line.strip_prefix("segment ").ok_or_else(|| corrupt("unknown manifest line"))?;
        if name.contains('/') || !name.ends_with(".seg") {
            return Err(corrupt("bad segment file name"));
        }
        let segment = Segment::open(&dir.join(name))?;
        for document in segment.documents() {
            set.indexed_through = set.indexed_through.max(document.contribution);
        }
        set.contributions += segment.documents().len() as u64;
        set.segments.push(Arc::new(segment));
    }
    Ok(set)
}

/// Makes `segments` the datanet's set: writes the manifest atomically, then deletes every other
/// segment file in the directory.
pub fn commit(dir: &Path, segments: &[Arc<Segment>]) -> Result<(), IndexError> {
    std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
    let mut text = format!("{MANIFEST_HEADER}\n");
    let mut keep = std::collections::HashSet::new();
    for segment in segments {
        let name = segment.path().file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        text.push_str(&format!("segment {name}\n"));
        keep.insert(name);
    }
    let temporary = dir.join("MANIFEST.tmp");
    std::fs::write(&temporary, text).map_err(|e| IndexError::io(&temporary, e))?;
    let manifest = dir.join(MANIFEST);
    std::fs::rename(&temporary, &manifest).map_err(|e| IndexError::io(&manifest, e))?;
    remove_unlisted(dir, &keep);
    Ok(())
}

fn remove_unlisted(dir: &Path, keep: &std::collections::HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_segment = name.ends_with(".seg") || name.ends_with(".seg.tmp");
        if is_segment && !keep.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Deletes a datanet's whole index directory (before a rebuild from the contributions).
pub fn clear(dir: &Path) -> Result<(), IndexError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(IndexError::io(dir, error)),
    }
}
