//! A connection's receive buffers: bytes read from the socket, cut into request frames that stay
//! slices of the allocation they were read into.
//!
//! Each read gets at most `READ_CHUNK_BYTES` of room, zeroed just before the read (a socket read
//! takes initialised memory), so the kernel writes into warm cache lines and no byte is zeroed
//! twice. A new buffer holds `RECEIVE_BUFFER_FRAMES` frames of the size last read, so a frame
//! rarely straddles two buffers (a straddling frame's first part is copied into the next), and
//! requests read one by one share a buffer.

use bytes::{Buf, Bytes, BytesMut};
use riffle_storage::ReceiveBuffer;

/// The most one socket read takes, and the least a new receive buffer holds.
pub(super) const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A new receive buffer holds this many frames of the size last read.
const RECEIVE_BUFFER_FRAMES: usize = 4;
/// The most a new receive buffer holds for several frames; a bigger frame is read whole into a
/// buffer of its own size.
const RECEIVE_BUFFER_MAX_BYTES: usize = 256 * 1024;
/// A read for no frame in particular (the next request) with less room than this left in the
/// receive buffer starts a new buffer instead.
const READ_MIN_ROOM_BYTES: usize = 16 * 1024;

pub(super) struct Received {
    /// The rest of the current receive buffer: `filled` bytes read and not yet framed, then
    /// zeroed room for the next read, then capacity not yet zeroed.
    buf: BytesMut,
    filled: usize,
    /// The size of the last frame taken: it sizes the next buffer.
    last_frame_bytes: usize,
    /// Names the current buffer's allocation for the shard cache's accounting.
    buffer: ReceiveBuffer,
}

impl Received {
    pub fn new() -> Self {
        Received {
            buf: BytesMut::new(),
            filled: 0,
            last_frame_bytes: 0,
            buffer: ReceiveBuffer::new(0),
        }
    }

    /// The bytes read and not yet framed.
    pub fn unframed(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    /// Zeroed room for the next read toward `want` unframed bytes (0: the next request, of a
    /// size not known yet): in the current buffer, or in a new one (with the unframed bytes moved
    /// to its front) when the current one cannot take the rest of the `want` bytes, or, wanting
    /// none in particular, has little room left. Never empty.
    pub fn room(&mut self, want: usize) -> &mut [u8] {
        let room = self.buf.capacity() - self.filled;
        let rest = want.saturating_sub(self.filled);
        if room < rest || (rest == 0 && room < READ_MIN_ROOM_BYTES) {
            let capacity = want
                .max(buffer_bytes(self.last_frame_bytes))
                .max(self.filled + 1);
            let mut fresh = BytesMut::with_capacity(capacity);
            fresh.extend_from_slice(&self.buf[..self.filled]);
            self.buf = fresh;
            self.buffer = ReceiveBuffer::new(capacity);
        }
        let room = (self.buf.capacity() - self.filled).min(READ_CHUNK_BYTES);
        if self.buf.len() < self.filled + room {
            // Within capacity: never reallocates, so the frames already taken stay slices of
            // the allocation `buffer` names.
            self.buf.resize(self.filled + room, 0);
        }
        &mut self.buf[self.filled..]
    }

    /// `n` bytes were read into the room.
    pub fn advance(&mut self, n: usize) {
        debug_assert!(self.filled + n <= self.buf.len());
        self.filled += n;
    }

    /// Takes the first `frame_bytes` unframed bytes (a size prefix and its frame): the frame
    /// without its prefix, and the allocation it is a slice of.
    pub fn take_frame(&mut self, frame_bytes: usize) -> (Bytes, ReceiveBuffer) {
        let mut frame = self.buf.split_to(frame_bytes);
        self.filled -= frame_bytes;
        self.last_frame_bytes = frame_bytes;
        frame.advance(4);
        (frame.freeze(), self.buffer.clone())
    }
}

/// The size of a new receive buffer after frames of `last_frame_bytes`.
fn buffer_bytes(last_frame_bytes: usize) -> usize {
    (RECEIVE_BUFFER_FRAMES * last_frame_bytes).clamp(READ_CHUNK_BYTES, RECEIVE_BUFFER_MAX_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One read toward `want` bytes from a socket holding `socket`: as much as the room takes.
    fn read_once(received: &mut Received, want: usize, socket: &mut &[u8]) {
        let room = received.room(want);
        assert!(!room.is_empty() && room.len() <= READ_CHUNK_BYTES);
        assert!(room.iter().all(|&b| b == 0), "the room is zeroed");
        let n = room.len().min(socket.len());
        room[..n].copy_from_slice(&socket[..n]);
        received.advance(n);
        *socket = &socket[n..];
    }

    /// Reads as the connection does: toward the size prefix, then the whole frame; takes it.
    fn next_frame(received: &mut Received, socket: &mut &[u8]) -> (Bytes, ReceiveBuffer) {
        if received.unframed().is_empty() {
            read_once(received, 0, socket);
        }
        while received.unframed().len() < 4 {
            read_once(received, 4, socket);
        }
        let size = u32::from_be_bytes(received.unframed()[..4].try_into().unwrap());
        let frame_bytes = 4 + size as usize;
        while received.unframed().len() < frame_bytes {
            read_once(received, frame_bytes, socket);
        }
        received.take_frame(frame_bytes)
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn small_requests_read_one_by_one_share_a_buffer() {
        let mut received = Received::new();
        let mut buffers = Vec::new();
        for i in 0..20u8 {
            let sent = frame(&[i; 1000]);
            let (body, buffer) = next_frame(&mut received, &mut &sent[..]);
            assert_eq!(&body[..], &[i; 1000][..]);
            buffers.push(buffer);
        }
        // 20 KB of requests in one 64 KiB buffer: a new one only below 16 KiB of room.
        let first = buffers[0].capacity();
        assert_eq!(first, READ_CHUNK_BYTES);
        assert!(buffers.iter().all(|b| b.capacity() == first));
    }

    #[test]
    fn large_frames_fill_buffers_sized_for_several_and_stay_intact() {
        let mut received = Received::new();
        let bodies: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 66 * 1024]).collect();
        let stream: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
        let mut socket = &stream[..];
        let taken: Vec<_> = bodies
            .iter()
            .map(|_| next_frame(&mut received, &mut socket))
            .collect();
        for ((body, _), expected) in taken.iter().zip(&bodies) {
            assert_eq!(body, expected, "a frame taken earlier is not overwritten");
        }
        // A frame that follows its predecessor in the same allocation was read in place; the
        // others started a new buffer (and had their first part copied into it).
        let new_buffers = 1 + taken
            .windows(2)
            .filter(|w| w[1].0.as_ptr() != w[0].0.as_ptr().wrapping_add(w[0].0.len() + 4))
            .count();
        // The first frame gets a buffer of its own size; after it, 256 KiB buffers of 3 frames.
        assert!(
            new_buffers <= 1 + bodies.len().div_ceil(3),
            "{new_buffers} buffers"
        );
        assert!(taken[2..]
            .iter()
            .all(|(_, b)| b.capacity() == RECEIVE_BUFFER_MAX_BYTES));
    }

    #[test]
    fn a_frame_above_the_buffer_limit_gets_a_buffer_of_its_own_size() {
        let mut received = Received::new();
        let body = vec![9u8; 600 * 1024];
        let sent = frame(&body);
        let (taken, buffer) = next_frame(&mut received, &mut &sent[..]);
        assert_eq!(&taken[..], &body[..]);
        assert_eq!(buffer.capacity(), sent.len());
    }
}
