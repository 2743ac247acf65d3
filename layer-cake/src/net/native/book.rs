//! The address book of one frame: how a link writes and reads the addresses
//! inside a message body.
//!
//! Serializing an [`Address`] inside a body for a link writes the address
//! into the frame's book (relative to that link) and the index into the
//! body; decoding reads it back relative to the link it arrived on. The book
//! is the runtime's [`AddressCodec`], installed for the one frame; outside a
//! frame addresses take their JSON form.

use std::sync::Arc;

use super::link::Link;
use super::wire::WireAddr;
use crate::runtime::Address;
use crate::runtime::transport::{self, AddressCodec};

struct Book {
    /// The link of the frame being written or read; `None` while the book
    /// waits for its next frame.
    link: Option<Arc<Link>>,
    entries: Vec<WireAddr>,
}

impl Book {
    fn link(&self) -> Result<&Arc<Link>, String> {
        self.link
            .as_ref()
            .ok_or_else(|| "no frame is being written or read".to_string())
    }
}

impl AddressCodec for Book {
    fn encode(&mut self, address: &Address) -> Result<u32, String> {
        let wire = self.link()?.wire_of(address)?;
        let index = match self.entries.iter().position(|e| *e == wire) {
            Some(i) => i,
            None => {
                self.entries.push(wire);
                self.entries.len() - 1
            }
        };
        u32::try_from(index).map_err(|_| "too many addresses in one message".to_string())
    }

    fn decode(&mut self, index: u32) -> Result<Address, String> {
        match self.entries.get(index as usize) {
            Some(wire) => self.link()?.address_of(*wire),
            None => Err(format!(
                "address {index} is not in the frame's book of {}",
                self.entries.len()
            )),
        }
    }
}

thread_local! {
    /// One book per thread, kept between frames: a frame costs no
    /// allocation for its book.
    static SPARE: std::cell::RefCell<Option<Box<Book>>> = const { std::cell::RefCell::new(None) };
}

fn book(link: &Arc<Link>, entries: Vec<WireAddr>) -> Box<Book> {
    let mut book = SPARE.with(|s| s.borrow_mut().take()).unwrap_or_else(|| {
        Box::new(Book {
            link: None,
            entries: Vec::new(),
        })
    });
    book.link = Some(link.clone());
    book.entries = entries;
    book
}

/// Empties `book` (its link and entries, handed back) and keeps it for the
/// thread's next frame.
fn put_back(mut book: Box<Book>) -> Vec<WireAddr> {
    book.link = None;
    let entries = std::mem::take(&mut book.entries);
    SPARE.with(|s| *s.borrow_mut() = Some(book));
    entries
}

/// Runs `f` (which encodes a body) with a fresh book for `link`; returns
/// what `f` returned and the book's entries.
pub(crate) fn encoding<R>(link: &Arc<Link>, f: impl FnOnce() -> R) -> (R, Vec<WireAddr>) {
    let (result, book) = transport::encoding(book(link, Vec::new()), f);
    (result, put_back(book))
}

/// Runs `f` (which decodes a body) with `entries` as the book, relative to
/// `link`.
pub(crate) fn decoding<R>(link: &Arc<Link>, entries: Vec<WireAddr>, f: impl FnOnce() -> R) -> R {
    let (result, book) = transport::decoding(book(link, entries), f);
    put_back(book);
    result
}
