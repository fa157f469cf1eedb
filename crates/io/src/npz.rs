//! NumPy `.npz` archives: a zip of `.npy` members, stored or deflated.

use crate::array::RawArray;
use crate::error::{IoError, Result};
use crate::npy::parse_npy;
use std::io::{Cursor, Read};

/// An opened `.npz` archive.
pub struct Npz {
    path: String,
    archive: zip::ZipArchive<Cursor<Vec<u8>>>,
    /// (array name, member name) of every member.
    members: Vec<(String, String)>,
}

impl Npz {
    /// Open the archive held in `bytes`; `path` names it in messages.
    pub fn new(bytes: Vec<u8>, path: &str) -> Result<Npz> {
        let archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| IoError::Corrupt {
            path: path.to_string(),
            what: format!("not a readable .npz (zip) archive: {e}"),
        })?;
        let members = archive
            .file_names()
            .filter_map(|name| name.ok())
            .map(|name| (name.trim_end_matches(".npy").to_string(), name.to_string()))
            .collect();
        Ok(Npz {
            path: path.to_string(),
            archive,
            members,
        })
    }

    /// Names of the arrays, without the `.npy` suffix.
    pub fn keys(&self) -> Vec<String> {
        self.members.iter().map(|(key, _)| key.clone()).collect()
    }

    /// Read the array named `key`, if it exists.
    pub fn get(&mut self, key: &str) -> Result<Option<RawArray>> {
        let Some((_, member)) = self.members.iter().find(|(k, _)| k == key) else {
            return Ok(None);
        };
        let source = format!("{}:{key}", self.path);
        let corrupt = |what: String| IoError::Corrupt {
            path: source.clone(),
            what,
        };
        let mut file = self
            .archive
            .by_name(member)
            .map_err(|e| corrupt(e.to_string()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
        parse_npy(&bytes, &source).map(Some)
    }
}
