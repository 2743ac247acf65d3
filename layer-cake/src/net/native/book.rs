//! The address book of the frame being encoded or decoded on this thread.
//!
//! Serializing an [`Address`] inside a message body for a link writes the
//! address into the frame's book (relative to that link) and the index into
//! the body; decoding reads it back relative to the link it arrived on.
//! Outside a frame these are not set and addresses serialize as plain ids.

use std::cell::RefCell;
use std::sync::Arc;

use super::link::Link;
use super::wire::WireAddr;
use crate::runtime::Address;

struct Book {
    link: Arc<Link>,
    entries: Vec<WireAddr>,
}

thread_local! {
    static ENCODING: RefCell<Option<Book>> = const { RefCell::new(None) };
    static DECODING: RefCell<Option<Book>> = const { RefCell::new(None) };
}

/// Runs `f` (which encodes a body) with a fresh book for `link`; returns
/// what `f` returned and the book's entries.
pub(crate) fn encoding<R>(link: &Arc<Link>, f: impl FnOnce() -> R) -> (R, Vec<WireAddr>) {
    let previous = ENCODING.with(|b| {
        b.replace(Some(Book {
            link: link.clone(),
            entries: Vec::new(),
        }))
    });
    let result = f();
    let book = ENCODING.with(|b| b.replace(previous));
    (result, book.map(|b| b.entries).unwrap_or_default())
}

/// Runs `f` (which decodes a body) with `entries` as the book, relative to
/// `link`.
pub(crate) fn decoding<R>(link: &Arc<Link>, entries: Vec<WireAddr>, f: impl FnOnce() -> R) -> R {
    let previous = DECODING.with(|b| {
        b.replace(Some(Book {
            link: link.clone(),
            entries,
        }))
    });
    let result = f();
    DECODING.with(|b| b.replace(previous));
    result
}

/// In a body being encoded for a link: the book index of `address`.
pub(crate) fn encode(address: &Address) -> Option<u32> {
    ENCODING.with(|b| {
        let mut b = b.borrow_mut();
        let book = b.as_mut()?;
        let wire = book.link.wire_of(address);
        let index = match book.entries.iter().position(|e| *e == wire) {
            Some(i) => i,
            None => {
                book.entries.push(wire);
                book.entries.len() - 1
            }
        };
        Some(index as u32)
    })
}

/// Whether a body from a link is being decoded on this thread.
pub(crate) fn decoding_now() -> bool {
    DECODING.with(|b| b.borrow().is_some())
}

/// In a body being decoded from a link: the address at `index`.
pub(crate) fn decode(index: u32) -> Result<Address, String> {
    DECODING.with(|b| {
        let b = b.borrow();
        let Some(book) = b.as_ref() else {
            return Err("no address book".to_string());
        };
        match book.entries.get(index as usize) {
            Some(wire) => book.link.address_of(*wire),
            None => Err(format!(
                "address {index} is not in the frame's book of {}",
                book.entries.len()
            )),
        }
    })
}
