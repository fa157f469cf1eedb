//! Checks an Arrow IPC file or stream before polars decodes it: every message and every
//! buffer must lie inside the bytes of the file. polars' IPC reader allocates buffers of the
//! length a file declares before reading them, so a malformed length would otherwise abort
//! the process on an impossible allocation; with this check no allocation exceeds the file.

use crate::error::{IoError, Result};
use polars_arrow_format::ipc::planus::ReadAsRoot;
use polars_arrow_format::ipc::{FooterRef, MessageHeaderRef, MessageRef, RecordBatchRef};

const MAGIC: &[u8] = b"ARROW1";

fn malformed(path: &str, what: String) -> IoError {
    IoError::Corrupt {
        path: path.to_string(),
        what: format!("malformed Arrow IPC data: {what}"),
    }
}

/// The buffers of a record batch lie within its body (`body`, the bytes of the message's
/// body); what they decompress to and the row counts of its nodes stay proportionate, since
/// polars allocates by them before it reads.
fn check_batch(batch: RecordBatchRef, body: &[u8], path: &str) -> Result<()> {
    let bad = |what: String| malformed(path, what);
    let size = body.len() as u64;
    let compressed = batch
        .compression()
        .map_err(|e| bad(format!("record batch compression: {e}")))?
        .is_some();
    let buffers = batch
        .buffers()
        .map_err(|e| bad(format!("record batch buffers: {e}")))?;
    let mut decompressed: u64 = 0;
    for buffer in buffers.into_iter().flatten() {
        let (offset, length) = (buffer.offset(), buffer.length());
        let range = u64::try_from(offset)
            .ok()
            .zip(u64::try_from(length).ok())
            .and_then(|(o, l)| Some((o, o.checked_add(l)?)));
        let Some((start, end)) = range.filter(|&(_, end)| end <= size) else {
            return Err(bad(format!(
                "a buffer (offset {offset}, length {length}) outside its message body of {size} bytes"
            )));
        };
        let declared = match (compressed, body.get(start as usize..start as usize + 8)) {
            (true, Some(b)) if end - start >= 8 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::try_from(i64::from_le_bytes(a)).unwrap_or(end - start)
            }
            _ => end - start,
        };
        decompressed = decompressed.saturating_add(declared);
    }
    let allowed = size.saturating_mul(1024).saturating_add(64 << 20);
    if decompressed > allowed {
        return Err(bad(format!(
            "a record batch of {size} bytes declares {decompressed} bytes once decompressed"
        )));
    }
    let rows_limit = decompressed.max(size).saturating_mul(8).saturating_add(8);
    let nodes = batch
        .nodes()
        .map_err(|e| bad(format!("record batch nodes: {e}")))?;
    for node in nodes.into_iter().flatten() {
        if node.length() < 0 || u64::try_from(node.length()).is_ok_and(|n| n > rows_limit) {
            return Err(bad(format!(
                "a column of {} rows in a record batch of {size} bytes",
                node.length()
            )));
        }
    }
    Ok(())
}

/// The message at `start` of `bytes`: its flatbuffer and where its body begins.
fn message_at<'a>(bytes: &'a [u8], start: usize, path: &str) -> Result<(MessageRef<'a>, usize)> {
    let bad = |what: String| malformed(path, what);
    let word = |at: usize| -> Result<i32> {
        bytes
            .get(at..at + 4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| bad(format!("truncated at byte {at}")))
    };
    let (length, at) = match word(start)? {
        -1 => (word(start + 4)?, start + 8),
        length => (length, start + 4),
    };
    let length =
        usize::try_from(length).map_err(|_| bad(format!("a negative length at byte {start}")))?;
    let end = at
        .checked_add(length)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| bad(format!("a message at byte {start} runs past the end")))?;
    let message = MessageRef::read_as_root(&bytes[at..end])
        .map_err(|e| bad(format!("a message at byte {start}: {e}")))?;
    Ok((message, end))
}

/// The body of `message` (starting at `body_start`) fits in the bytes and holds its buffers;
/// returns where it ends.
fn check_message(
    message: MessageRef,
    body_start: usize,
    bytes: &[u8],
    path: &str,
) -> Result<usize> {
    let bad = |what: String| malformed(path, what);
    let body = message
        .body_length()
        .ok()
        .and_then(|b| u64::try_from(b).ok())
        .ok_or_else(|| bad("a message with a negative body length".into()))?;
    let end = u64::try_from(body_start)
        .ok()
        .and_then(|s| s.checked_add(body))
        .filter(|&end| end <= bytes.len() as u64)
        .ok_or_else(|| bad(format!("a message body of {body} bytes runs past the end")))?;
    let body = &bytes[body_start..end as usize];
    match message
        .header()
        .map_err(|e| bad(format!("a message header: {e}")))?
    {
        Some(MessageHeaderRef::RecordBatch(batch)) => check_batch(batch, body, path)?,
        Some(MessageHeaderRef::DictionaryBatch(dictionary)) => {
            if let Some(batch) = dictionary
                .data()
                .map_err(|e| bad(format!("a dictionary batch: {e}")))?
            {
                check_batch(batch, body, path)?;
            }
        }
        _ => {}
    }
    Ok(end as usize)
}

/// Check an Arrow IPC file (`ARROW1` ... footer ... `ARROW1`) or stream held in `bytes`.
pub fn check_ipc(bytes: &[u8], path: &str) -> Result<()> {
    let bad = |what: String| malformed(path, what);
    if bytes.starts_with(MAGIC) {
        let len = bytes.len();
        if len < 16 || !bytes.ends_with(MAGIC) {
            return Err(bad(
                "an Arrow file without its closing magic (truncated?)".into()
            ));
        }
        let footer_length = i32::from_le_bytes([
            bytes[len - 10],
            bytes[len - 9],
            bytes[len - 8],
            bytes[len - 7],
        ]);
        let footer_start = usize::try_from(footer_length)
            .ok()
            .and_then(|f| (len - 10).checked_sub(f))
            .ok_or_else(|| bad(format!("a footer length of {footer_length}")))?;
        let footer = FooterRef::read_as_root(&bytes[footer_start..len - 10])
            .map_err(|e| bad(format!("the footer: {e}")))?;
        let batches = footer
            .record_batches()
            .map_err(|e| bad(format!("the footer's record batches: {e}")))?;
        let dictionaries = footer
            .dictionaries()
            .map_err(|e| bad(format!("the footer's dictionaries: {e}")))?;
        for block in batches
            .into_iter()
            .flatten()
            .chain(dictionaries.into_iter().flatten())
        {
            let start = usize::try_from(block.offset())
                .ok()
                .filter(|&s| s < footer_start)
                .ok_or_else(|| bad(format!("a block at offset {}", block.offset())))?;
            let (message, body_start) = message_at(&bytes[..footer_start], start, path)?;
            check_message(message, body_start, &bytes[..footer_start], path)?;
        }
        return Ok(());
    }
    // A stream: messages one after another until the end marker or the end of the bytes.
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let marker = &bytes[at..at + 8];
        if marker == [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0] || marker[..4] == [0, 0, 0, 0] {
            break;
        }
        let (message, body_start) = message_at(bytes, at, path)?;
        at = check_message(message, body_start, bytes, path)?;
        at = at.next_multiple_of(8).min(bytes.len());
    }
    Ok(())
}
