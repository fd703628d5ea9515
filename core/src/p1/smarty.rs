//! Luxembourg Smarty meters: AES-128-GCM encrypted P1 frames (feature `smarty`).
//!
//! A frame on the wire (DLMS general-glo-ciphering):
//!
//! ```text
//! DB | 08 | system title (8) | 82 | length (2, BE) | SC (30) | invocation counter (4) | ciphertext | tag (12)
//! ```
//!
//! `length` counts everything after it. The IV is system title ‖ invocation counter;
//! the additional authenticated data is SC ‖ authentication key. The plaintext is an
//! ordinary telegram with a CRC: feed it to a [`TelegramReader`](super::TelegramReader).
//!
//! Never panics: any bytes in, a plaintext or a counted [`SmartyRejection`] out. A
//! frame that fails authentication yields nothing.

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::aes::Aes128;
use aes_gcm::aes::cipher::consts::U12;
use aes_gcm::{AesGcm, Nonce, Tag};

type Aes128Gcm12 = AesGcm<Aes128, U12, U12>;

const START: u8 = 0xDB;
const TITLE_LEN: usize = 8;
const LENGTH_TAG: u8 = 0x82;
/// Security control byte: authenticated and encrypted.
const SC_AUTH_ENC: u8 = 0x30;
const TAG_LEN: usize = 12;
/// Bytes before the `length` field ends: DB, title length, title, 82, length.
const PRELUDE: usize = 2 + TITLE_LEN + 1 + 2;
/// SC + invocation counter + tag.
const OVERHEAD: usize = 1 + 4 + TAG_LEN;

/// The user-supplied keys (printed on the meter's key letter from the grid operator).
#[derive(Clone, Copy)]
pub struct SmartyKeys {
    /// The encryption key (GUEK).
    pub key: [u8; 16],
    /// The authentication key (GAK).
    pub auth_key: [u8; 16],
}

impl core::fmt::Debug for SmartyKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SmartyKeys { .. }")
    }
}

/// Why a frame gave no plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmartyRejection {
    /// The prelude after `0xDB` is not the Smarty layout (title length, `0x82`, SC).
    BadHeader,
    /// The frame does not fit the buffer, or is too short to hold a tag.
    BadLength,
    /// The tag did not verify: wrong keys, or the frame was corrupted.
    AuthFailed,
}

impl core::fmt::Display for SmartyRejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SmartyRejection::BadHeader => "not a Smarty frame header",
            SmartyRejection::BadLength => "Smarty frame length out of range",
            SmartyRejection::AuthFailed => "Smarty frame failed authentication (wrong key?)",
        })
    }
}

/// Decrypts one complete frame in place; returns the plaintext telegram (a part of
/// `frame`).
pub fn decrypt_frame<'a>(
    frame: &'a mut [u8],
    keys: &SmartyKeys,
) -> Result<&'a [u8], SmartyRejection> {
    let total = check_prelude(frame)?;
    if frame.len() != total {
        return Err(SmartyRejection::BadLength);
    }
    let mut nonce = [0u8; 12];
    nonce[..TITLE_LEN].copy_from_slice(&frame[2..2 + TITLE_LEN]);
    nonce[TITLE_LEN..].copy_from_slice(&frame[PRELUDE + 1..PRELUDE + 5]);
    let mut aad = [0u8; 17];
    aad[0] = frame[PRELUDE];
    aad[1..].copy_from_slice(&keys.auth_key);
    let (body, tag) = frame[PRELUDE + 5..].split_at_mut(total - PRELUDE - 5 - TAG_LEN);
    let tag = Tag::<U12>::try_from(&*tag).map_err(|_| SmartyRejection::BadLength)?;
    let cipher = Aes128Gcm12::new_from_slice(&keys.key).map_err(|_| SmartyRejection::AuthFailed)?;
    cipher
        .decrypt_inout_detached(&Nonce::from(nonce), &aad, InOutBuf::from(&mut *body), &tag)
        .map_err(|_| SmartyRejection::AuthFailed)?;
    Ok(body)
}

/// Checks the prelude (as much of it as is present) and returns the total frame
/// length once the length field is in.
fn check_prelude(frame: &[u8]) -> Result<usize, SmartyRejection> {
    let expect = [
        (0, START),
        (1, TITLE_LEN as u8),
        (2 + TITLE_LEN, LENGTH_TAG),
    ];
    for (i, v) in expect {
        if frame.get(i).is_some_and(|&b| b != v) {
            return Err(SmartyRejection::BadHeader);
        }
    }
    if frame.get(PRELUDE).is_some_and(|&b| b != SC_AUTH_ENC) {
        return Err(SmartyRejection::BadHeader);
    }
    match frame.get(PRELUDE - 2..PRELUDE) {
        Some(&[hi, lo]) => {
            let n = usize::from(u16::from_be_bytes([hi, lo]));
            if n <= OVERHEAD {
                return Err(SmartyRejection::BadLength);
            }
            Ok(PRELUDE + n)
        }
        _ => Ok(usize::MAX),
    }
}

/// Counters of the Smarty framer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmartyStats {
    /// Frames decrypted.
    pub decrypted: u32,
    /// Frames refused (header, length or authentication).
    pub rejected: u32,
}

/// Outcome of [`SmartyReader::feed`].
#[derive(Debug)]
pub enum SmartyEvent<'a> {
    /// The decrypted telegram of one authenticated frame.
    Plaintext(&'a [u8]),
    /// A frame was refused.
    Rejected(SmartyRejection),
}

/// Streaming framer and decrypter for Smarty frames, fed chunks of any size.
#[derive(Debug, Clone)]
pub struct SmartyReader<const N: usize = 2048> {
    keys: SmartyKeys,
    buf: [u8; N],
    len: usize,
    stats: SmartyStats,
}

impl<const N: usize> SmartyReader<N> {
    /// A reader with the meter's keys.
    pub const fn new(keys: SmartyKeys) -> Self {
        Self {
            keys,
            buf: [0; N],
            len: 0,
            stats: SmartyStats {
                decrypted: 0,
                rejected: 0,
            },
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &SmartyStats {
        &self.stats
    }

    /// Consume bytes until a frame is complete or the input is used up; returns the
    /// bytes consumed and the event, if any. Call again with the rest.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<SmartyEvent<'_>>) {
        let mut i = 0;
        while i < input.len() {
            if self.len == 0 {
                match input[i..].iter().position(|&b| b == START) {
                    None => return (input.len(), None),
                    Some(p) => i += p,
                }
            }
            // Take bytes up to the prelude, then up to the frame's end.
            let want = match check_prelude(&self.buf[..self.len]) {
                Ok(usize::MAX) => PRELUDE + 1,
                Ok(total) if total > N => {
                    return (i, Some(self.reject(SmartyRejection::BadLength)));
                }
                Ok(total) => total,
                Err(r) => return (i, Some(self.reject(r))),
            };
            let take = (want - self.len).min(input.len() - i);
            self.buf[self.len..self.len + take].copy_from_slice(&input[i..i + take]);
            self.len += take;
            i += take;
            match check_prelude(&self.buf[..self.len]) {
                Err(r) => return (i, Some(self.reject(r))),
                Ok(total) if total <= N && self.len == total => {
                    self.len = 0;
                    let event = match decrypt_frame(&mut self.buf[..total], &self.keys) {
                        Ok(plain) => {
                            self.stats.decrypted = self.stats.decrypted.saturating_add(1);
                            SmartyEvent::Plaintext(plain)
                        }
                        Err(r) => {
                            self.stats.rejected = self.stats.rejected.saturating_add(1);
                            SmartyEvent::Rejected(r)
                        }
                    };
                    return (i, Some(event));
                }
                Ok(_) => {}
            }
        }
        (input.len(), None)
    }

    fn reject(&mut self, r: SmartyRejection) -> SmartyEvent<'_> {
        self.len = 0;
        self.stats.rejected = self.stats.rejected.saturating_add(1);
        SmartyEvent::Rejected(r)
    }
}
