//! `qemu-img info --backing-chain --output=json` as an input: for consoles
//! that can run qemu-img on the host but cannot upload images. The document
//! (an array, top first, or one object) becomes the same [`Image`]s a probe
//! would give, so the chain builder and the XML writer treat it alike.

use super::XmlError;
use crate::chain::{Image, Probed};
use crate::image::{Format, ImageInfo};
use crate::json::{self, Value};
use crate::limits::{MAX_QEMU_JSON_BYTES, MAX_QEMU_JSON_DEPTH};

/// Parse the JSON document into images (top first).
pub fn images(text: &str) -> Result<Vec<Image>, XmlError> {
    let limits = json::Limits {
        depth: MAX_QEMU_JSON_DEPTH,
        bytes: MAX_QEMU_JSON_BYTES,
    };
    let v = json::parse(text, limits)
        .map_err(|e| XmlError::at(e.offset, format!("qemu-img JSON: {e}")))?;
    let items: Vec<&Value> = match &v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![&v],
        _ => {
            return Err(XmlError::at(
                0,
                "qemu-img JSON: expected an array or an object",
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let s = |k: &str| it.get(k).and_then(Value::as_str).map(str::to_string);
        let filename = s("filename").ok_or_else(|| {
            XmlError::at(0, format!("qemu-img JSON: entry {i} has no \"filename\""))
        })?;
        let fmt_name = s("format").unwrap_or_default();
        let probe = match Format::from_name(&fmt_name) {
            Some(f) => {
                let mut info = ImageInfo::new(f);
                info.virtual_size = it.get("virtual-size").and_then(Value::as_u64);
                info.cluster_size = it.get("cluster-size").and_then(Value::as_u64);
                info.backing_filename = s("backing-filename");
                info.backing_filename_format = s("backing-filename-format");
                info.encrypted = it
                    .get("encrypted")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                info.dirty_flag = it.get("dirty-flag").and_then(Value::as_bool);
                Probed::Info(Box::new(info))
            }
            None => Probed::Error {
                error: format!(
                    "qemu-img reports format '{fmt_name}', which this tool does not know"
                ),
            },
        };
        out.push(Image {
            filename,
            probe,
            bytes_read: 0,
        });
    }
    Ok(out)
}
