//! `qemu-img info --backing-chain --output=json` as an input: for consoles
//! that can run qemu-img on the host but cannot upload images. The document
//! (an array, top first, or one object) becomes the same [`Image`]s a probe
//! would give, so the chain builder and the XML writer treat it alike.

use super::XmlError;
use crate::chain::{Image, Probed};
use crate::image::{Format, FormatSpecific, ImageInfo};
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
    let items: Vec<Value> = match v {
        Value::Array(a) => a,
        Value::Object(_) => vec![v],
        _ => {
            return Err(XmlError::at(
                0,
                "qemu-img JSON: expected an array or an object",
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, mut it) in items.into_iter().enumerate() {
        // `format-specific` as qemu-img printed it: the qcow2 data file
        // (`data.data-file`) is read from it ([`ImageInfo::data_file`]).
        let format_specific = match &mut it {
            Value::Object(o) => o.remove("format-specific"),
            _ => None,
        };
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
                info.format_specific = format_specific.map(FormatSpecific::Other);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `qemu-img info --output=json --backing-chain top.qcow2` (qemu-img
    /// 10.0.2) of `qemu-img create -f qcow2 -o
    /// data_file=d.raw,data_file_raw=on top.qcow2 1M`, as printed.
    const DATA_FILE: &str = r#"[
    {
        "children": [
            {
                "name": "file",
                "info": {
                    "children": [
                    ],
                    "virtual-size": 327680,
                    "filename": "top.qcow2",
                    "format": "file",
                    "actual-size": 266240,
                    "format-specific": {
                        "type": "file",
                        "data": {
                        }
                    },
                    "dirty-flag": false
                }
            }
        ],
        "virtual-size": 1048576,
        "filename": "top.qcow2",
        "cluster-size": 65536,
        "format": "qcow2",
        "actual-size": 266240,
        "format-specific": {
            "type": "qcow2",
            "data": {
                "compat": "1.1",
                "compression-type": "zlib",
                "lazy-refcounts": false,
                "refcount-bits": 16,
                "data-file": "d.raw",
                "data-file-raw": true,
                "corrupt": false,
                "extended-l2": false
            }
        },
        "dirty-flag": false
    }
]"#;

    #[test]
    fn the_data_file_comes_along() {
        let images = images(DATA_FILE).unwrap();
        assert_eq!(images.len(), 1);
        let info = images[0].info().unwrap();
        assert_eq!(info.virtual_size, Some(1 << 20));
        assert_eq!(info.data_file(), Some(("d.raw", true)));
        // Written back as qemu-img printed it.
        let fs = serde_json::to_value(&info.format_specific).unwrap();
        assert_eq!(fs["data"]["refcount-bits"], 16);
        assert_eq!(fs["type"], "qcow2");
    }

    #[test]
    fn malformed_documents_say_where() {
        let e = images("[{\"filename\": \"a\"}, {\"filename\": }]").unwrap_err();
        assert_eq!(e.position, 33);
        assert!(
            e.message.starts_with("qemu-img JSON: expected a value"),
            "{}",
            e.message
        );
        let e = images("[{\"filename\": \"a\", \"filename\": \"b\"}]").unwrap_err();
        assert_eq!(e.position, 19);
        assert!(
            e.message.contains("\"filename\" is set twice"),
            "{}",
            e.message
        );
    }
}
