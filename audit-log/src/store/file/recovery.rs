//! Opening a store: scan the segments, build the index, cut torn tails.

use super::writer::TenantWriter;
use super::*;

pub(super) type Loaded = (
    HashMap<TenantId, TenantIndex>,
    HashMap<TenantId, TenantWriter>,
);

/// Scan the store directory, build the index and (for writers) recover torn
/// tails and open the newest segment of each tenant for appending.
pub(super) fn load(dir: &Path, write: bool) -> Result<Loaded> {
    let mut index = HashMap::new();
    let mut writers = HashMap::new();
    let mut tdirs: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("t-"))
        })
        .collect();
    tdirs.sort();
    for tdir in tdirs {
        let name = tdir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let tenant = hex::decode(&name[2..])
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| TenantId::parse(&s).ok())
            .ok_or_else(|| Error::Corrupt {
                what: "tenant directory name",
                file: name.to_owned(),
                offset: 0,
            })?;
        let mut segs: Vec<PathBuf> = Vec::new();
        for e in fs::read_dir(&tdir)? {
            let p = e?.path();
            let n = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if n.ends_with(".seg.tmp") && write {
                // A roll that crashed before its rename: never referenced, remove.
                fs::remove_file(&p)?;
            } else if n.ends_with(".seg") {
                segs.push(p);
            }
        }
        segs.sort();
        if segs.is_empty() {
            continue;
        }
        let mut ti = TenantIndex {
            dir: tdir.clone(),
            ..TenantIndex::default()
        };
        let mut writer = None;
        let nsegs = segs.len();
        for (si, path) in segs.iter().enumerate() {
            let last = si + 1 == nsegs;
            let file_name = rel(dir, path);
            let bytes = fs::read(path)?;
            let parsed = parse_segment(&bytes).map_err(|_| Error::Corrupt {
                what: "segment header",
                file: file_name.clone(),
                offset: 0,
            })?;
            if parsed.header.tenant != tenant {
                return Err(Error::Corrupt {
                    what: "segment of another tenant",
                    file: file_name,
                    offset: 0,
                });
            }
            if si == 0 {
                ti.first_seq = parsed.header.first_seq;
                ti.start_prev = parsed.header.prev_link;
                ti.head = parsed.header.prev_link;
            } else if write
                && (parsed.header.first_seq != ti.size() || parsed.header.prev_link != ti.head)
            {
                return Err(Error::Corrupt {
                    what: "segment does not continue the previous one",
                    file: file_name,
                    offset: 0,
                });
            }
            if write {
                require_usable(&parsed, last, &file_name)?;
            }
            let seg = u32::try_from(si).map_err(|_| Error::SequenceExhausted)?;
            for f in &parsed.frames {
                let seq = ti.size();
                let record = &bytes[f.record_range()];
                if write
                    && !peek_header(record)
                        .is_ok_and(|h| h.seq == seq && h.tenant == tenant.as_str().as_bytes())
                {
                    return Err(Error::Corrupt {
                        what: "record out of sequence",
                        file: file_name,
                        offset: f.offset,
                    });
                }
                if let Ok((_, e)) = decode_record(record) {
                    for s in e.subjects() {
                        ti.subjects.entry(s.clone()).or_default().push(seq);
                    }
                }
                ti.locs.push(Loc {
                    seg,
                    offset: f.offset,
                    len: f.record_len,
                });
                ti.head = f.link;
            }
            let mut len = bytes.len() as u64;
            match parsed.end {
                SegmentEnd::Clean => {}
                SegmentEnd::TornTail {
                    valid_len,
                    whole_frame,
                } => {
                    if write {
                        tracing::warn!(file = %file_name, cut = len - valid_len, "audit store: cutting torn tail after a crash");
                        let f = OpenOptions::new().write(true).open(path)?;
                        f.set_len(valid_len)?;
                        f.sync_all()?;
                        len = valid_len;
                    } else if whole_frame || !last {
                        ti.damage_at.get_or_insert(ti.size());
                    }
                }
                SegmentEnd::Corrupt { .. } => {
                    ti.damage_at.get_or_insert(ti.size());
                }
            }
            ti.segments.push(SegInfo {
                path: path.clone(),
                file: Arc::new(File::open(path)?),
            });
            if last && write {
                writer = Some(TenantWriter {
                    dir: tdir.clone(),
                    file: OpenOptions::new().append(true).open(path)?,
                    seg,
                    seg_len: len,
                    next_seq: ti.size(),
                    head: ti.head,
                    buf: Vec::new(),
                    new_segments: Vec::new(),
                    new_locs: Vec::new(),
                    dirty: false,
                });
            }
            if !write && ti.damage_at.is_some() {
                break;
            }
        }
        if let Some(w) = writer {
            writers.insert(tenant.clone(), w);
        }
        index.insert(tenant, ti);
    }
    Ok((index, writers))
}
