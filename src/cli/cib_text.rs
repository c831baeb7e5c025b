//! Reading a CIB file for the offline commands (`pacer simulate --cib`,
//! `pacer import-cib`): a regular file of some size is mapped from the page cache
//! rather than copied into fresh memory, which the kernel would first clear (a copy of
//! a 6 MB CIB cost about 3% of `pacer simulate` on 100 × 5,000, issue 19). Anything
//! else (a pipe, a device, a small file) is read.
//!
//! The risk taken, as `rustc` takes it with the libraries it maps: the file must not
//! be changed in place while it is read (for a 6 MB CIB, about 10 ms). A file
//! replaced by a rename leaves the mapping whole; one truncated meanwhile (`cibadmin
//! -Q > cib.xml` over it) ends this process with SIGBUS; bytes rewritten in place
//! after the UTF-8 check would break what the parser assumes of its text. A file that
//! cannot be mapped (some network or FUSE file systems) is read.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

/// Files smaller than this are read: mapping costs a few system calls of its own.
const MAP_FROM: u64 = 1 << 20;

/// A CIB's text, mapped or read.
pub(crate) struct CibText {
    bytes: Bytes,
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl CibText {
    /// Reads `path`: mapped when it is a regular file of at least 1 MiB.
    pub(crate) fn read(path: &Path) -> std::io::Result<CibText> {
        let mut file = File::open(path)?;
        let metadata = file.metadata()?;
        if metadata.is_file() && metadata.len() >= MAP_FROM {
            // SAFETY: a read-only private map, whose text is checked as UTF-8 before
            // use; sound as long as no one changes the file in place meanwhile — the
            // risk this module's documentation states and takes.
            if let Ok(map) = unsafe { memmap2::MmapOptions::new().populate().map(&file) } {
                return Ok(CibText { bytes: Bytes::Mapped(map) });
            }
        }
        let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
        file.read_to_end(&mut bytes)?;
        Ok(CibText { bytes: Bytes::Read(bytes) })
    }

    /// The text, or the same error `std::fs::read_to_string` gives for bytes that are
    /// not UTF-8.
    pub(crate) fn as_str(&self) -> std::io::Result<&str> {
        let bytes = match &self.bytes {
            Bytes::Mapped(map) => &map[..],
            Bytes::Read(bytes) => bytes.as_slice(),
        };
        std::str::from_utf8(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
    }

    /// Whether the text was mapped rather than read.
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Mapped(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_file_is_mapped_a_small_one_read_and_both_give_the_text() {
        let dir = tempfile::tempdir().expect("temp dir");
        let large = dir.path().join("large.xml");
        let text = format!("<cib>{}</cib>", "<x/>".repeat(300_000));
        std::fs::write(&large, &text).expect("write");
        let read = CibText::read(&large).expect("read");
        assert!(read.is_mapped());
        assert_eq!(read.as_str().expect("utf-8"), text);

        let small = dir.path().join("small.xml");
        std::fs::write(&small, "<cib/>").expect("write");
        let read = CibText::read(&small).expect("read");
        assert!(!read.is_mapped());
        assert_eq!(read.as_str().expect("utf-8"), "<cib/>");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_error_mapped_or_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        for size in [10, 2 << 20] {
            let path = dir.path().join(format!("bad-{size}.xml"));
            let mut bytes = vec![b'a'; size];
            bytes[size / 2] = 0xFF;
            std::fs::write(&path, &bytes).expect("write");
            let read = CibText::read(&path).expect("read");
            let error = read.as_str().expect_err("not UTF-8");
            assert_eq!(error.to_string(), "stream did not contain valid UTF-8");
        }
    }

    #[test]
    fn a_device_is_read_not_mapped() {
        let read = CibText::read(Path::new("/dev/null")).expect("read");
        assert!(!read.is_mapped());
        assert_eq!(read.as_str().expect("utf-8"), "");
    }
}
