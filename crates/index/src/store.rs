//! One datanet's segments on disk: a directory of segment files and a `MANIFEST` naming the ones in
//! use, replaced atomically (write a temporary file, rename). Files not in the manifest are
//! leftovers of an interrupted build or merge and are deleted. The manifest may also name the
//! layout its segments follow (an opaque line for whoever builds them, such as the node's index
//! manager); a manifest without one makes no promise about how its segments were cut.

use std::path::Path;
use std::sync::Arc;

use crate::segment::Segment;
use crate::{IndexError, version_of};

const MANIFEST: &str = "MANIFEST";
const MANIFEST_HEADER: &str = "tributary-index-manifest 1";
/// Longest layout name a manifest may carry.
pub const LAYOUT_NAME_BYTES_MAX: usize = 128;

/// The segments of one datanet, and what they cover.
#[derive(Clone, Debug, Default)]
pub struct SegmentSet {
    pub segments: Vec<Arc<Segment>>,
    /// The highest contribution id indexed (contributions are indexed in id order).
    pub indexed_through: u64,
    /// Distinct contributions held (a document too large for one segment is cut across several,
    /// and counts once).
    pub contributions: u64,
    /// The layout the manifest says its segments follow, if it names one.
    pub layout: Option<String>,
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
        if let Some(layout) = line.strip_prefix("layout ") {
            if set.layout.is_some() || !set.segments.is_empty() || layout.len() > LAYOUT_NAME_BYTES_MAX {
                return Err(corrupt("bad layout line"));
            }
            set.layout = Some(layout.to_owned());
            continue;
        }
        let name = line.strip_prefix("segment ").ok_or_else(|| corrupt("unknown manifest line"))?;
        if name.contains('/') || !name.ends_with(".seg") {
            return Err(corrupt("bad segment file name"));
        }
        set.segments.push(Arc::new(Segment::open(&dir.join(name))?));
    }
    (set.indexed_through, set.contributions) = coverage(&set.segments);
    Ok(set)
}

/// The highest contribution id in `segments` and how many distinct contributions they hold (a
/// document cut across segments appears in consecutive ones).
pub fn coverage(segments: &[Arc<Segment>]) -> (u64, u64) {
    let (mut indexed_through, mut contributions, mut previous) = (0, 0, None);
    for segment in segments {
        for document in segment.documents() {
            indexed_through = indexed_through.max(document.contribution);
            if previous != Some(document.contribution) {
                contributions += 1;
                previous = Some(document.contribution);
            }
        }
    }
    (indexed_through, contributions)
}

/// Makes `segments` the datanet's set: writes the manifest atomically, then deletes every other
/// segment file in the directory.
pub fn commit(dir: &Path, segments: &[Arc<Segment>]) -> Result<(), IndexError> {
    commit_with_layout(dir, segments, None)
}

/// [`commit`], recording in the manifest the name of the layout the segments follow.
pub fn commit_with_layout(
    dir: &Path,
    segments: &[Arc<Segment>],
    layout: Option<&str>,
) -> Result<(), IndexError> {
    std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
    let mut text = format!("{MANIFEST_HEADER}\n");
    if let Some(layout) = layout {
        assert!(
            layout.len() <= LAYOUT_NAME_BYTES_MAX && !layout.contains('\n'),
            "a layout name is one short line: {layout:?}"
        );
        text.push_str(&format!("layout {layout}\n"));
    }
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
