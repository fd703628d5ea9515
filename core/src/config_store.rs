//! The configuration on NOR flash (the firmware's store; feature `flash-store`).
//!
//! Two layers:
//! - the record: a versioned, self-describing encoding of a [`Config`]
//!   ([`encode`] / [`decode`]): `version, count, (address, value)…`, big-endian. Each
//!   setting is stored with its register address, so a newer firmware reads an older
//!   record (settings it lacks take their defaults) and an older firmware a newer one
//!   (addresses it does not know are skipped): that is the migration path.
//! - the store: [`ConfigStore`] keeps the record in a `sequential-storage` map (pinned
//!   major 8: the on-flash format is promised per major) on the last sectors of the
//!   flash. sequential-storage writes a new item before the old one stops counting, so
//!   a power cut at any moment leaves the old or the new configuration (shown by
//!   `core/tests/config_store.rs`, which cuts the power at every write of many saves).
//!
//! A save may erase a sector, and on the RP2040 an erase stops code fetch from flash
//! for up to [`RP2040_ERASE_MS_MAX`]: the caller schedules [`ConfigStore::save`] into a
//! quiet gap, using [`ConfigStore::worst_case_save_ms`].
//!
//! Never panics: any flash contents load as a configuration or as the defaults with
//! the reason ([`Loaded`]).

use core::ops::Range;

use embedded_storage_async::nor_flash::{ErrorType, MultiwriteNorFlash, NorFlash, ReadNorFlash};
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage};

use crate::config::{Config, SETTINGS};

/// The record format written by this version.
pub const RECORD_VERSION: u8 = 1;
/// The map key of the configuration record.
pub const CONFIG_KEY: u8 = 1;
/// Bytes of the largest record: version, count, 4 bytes per setting.
pub const MAX_RECORD: usize = 2 + 4 * SETTINGS.len();
/// Working buffer: key + record, rounded up for flash word alignment.
const BUFFER: usize = (MAX_RECORD + 1).div_ceil(32) * 32 + 32;

/// RP2040 QSPI flash (W25Q16JV): a 4 KiB sector erase takes up to this long.
pub const RP2040_ERASE_MS_MAX: u32 = 400;
/// RP2040 QSPI flash: programming one 256-byte page takes up to this long.
pub const RP2040_PAGE_PROGRAM_MS_MAX: u32 = 3;

/// Why a record was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Empty or cut short.
    Truncated,
    /// A record version this firmware does not know.
    UnknownVersion(u8),
    /// A value out of its range, or an inconsistent set (names the register).
    Invalid(u16),
}

/// Encodes `config` into `out`; returns the length.
pub fn encode(config: &Config, out: &mut [u8; MAX_RECORD]) -> usize {
    out[0] = RECORD_VERSION;
    let mut n = 0usize;
    for (k, (setting, value)) in config.iter().enumerate() {
        let at = 2 + 4 * k;
        out[at..at + 2].copy_from_slice(&setting.address.to_be_bytes());
        out[at + 2..at + 4].copy_from_slice(&value.to_be_bytes());
        n += 1;
    }
    out[1] = u8::try_from(n).unwrap_or(u8::MAX);
    2 + 4 * n
}

/// Decodes a record: settings it holds replace the defaults; unknown addresses are
/// skipped; the result is validated as a whole.
pub fn decode(bytes: &[u8]) -> Result<Config, DecodeError> {
    let (&version, rest) = bytes.split_first().ok_or(DecodeError::Truncated)?;
    if version != RECORD_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (&count, pairs) = rest.split_first().ok_or(DecodeError::Truncated)?;
    let pairs = pairs
        .get(..usize::from(count) * 4)
        .ok_or(DecodeError::Truncated)?;
    let mut config = Config::default();
    for pair in pairs.chunks_exact(4) {
        let address = u16::from_be_bytes([pair[0], pair[1]]);
        let value = u16::from_be_bytes([pair[2], pair[3]]);
        if config.get(address).is_none() {
            continue; // a setting of another version
        }
        config
            .set(address, value)
            .map_err(|_| DecodeError::Invalid(address))?;
    }
    config.validate().map_err(|e| match e {
        crate::config::ConfigError::UnknownAddress(a) => DecodeError::Invalid(a),
        crate::config::ConfigError::OutOfRange { setting, .. }
        | crate::config::ConfigError::Inconsistent { setting, .. } => {
            DecodeError::Invalid(setting.address)
        }
    })?;
    Ok(config)
}

/// What [`ConfigStore::load`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// The saved configuration.
    Saved(Config),
    /// Nothing saved yet: the defaults.
    NoRecord,
    /// A record that cannot be used (register 1003 bit 4: defaults in use).
    Invalid(DecodeError),
    /// The flash could not be read or its contents are damaged beyond repair (1003
    /// bit 4 too).
    Damaged,
}

impl Loaded {
    /// The configuration to run with.
    pub fn config(&self) -> Config {
        match self {
            Loaded::Saved(c) => *c,
            _ => Config::default(),
        }
    }

    /// True when the defaults are in use because the saved data was unusable.
    pub fn defaults_after_error(&self) -> bool {
        matches!(self, Loaded::Invalid(_) | Loaded::Damaged)
    }
}

/// Why a save failed (the device answers exception 04 and keeps the staged values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveError {
    /// The flash failed or the store is full or damaged.
    Flash,
}

/// The configuration store on a range of whole erase sectors (at least two).
pub struct ConfigStore<F: MultiwriteNorFlash> {
    /// `None` only if rebuilding the map failed (it cannot: the range was checked).
    map: Option<Map<F>>,
    range: Range<u32>,
    buf: [u8; BUFFER],
}

type Map<F> = MapStorage<u8, WordFlash<F>, Cache<Uncached, Uncached, Uncached, u8>>;

/// The write unit the store gives sequential-storage.
pub const STORE_WORD: usize = 4;

/// A flash seen through 4-byte write words. The RP2040 (embassy-rp) takes 1-byte
/// writes; with those, a power cut inside an item header left sequential-storage
/// unable to see later saves (found by `core/tests/config_store.rs`), while 4-byte
/// words survive a cut at every byte.
pub struct WordFlash<F>(F);

impl<F: ErrorType> ErrorType for WordFlash<F> {
    type Error = F::Error;
}

impl<F: ReadNorFlash> ReadNorFlash for WordFlash<F> {
    const READ_SIZE: usize = F::READ_SIZE;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.0.read(offset, bytes).await
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<F: NorFlash> NorFlash for WordFlash<F> {
    const WRITE_SIZE: usize = STORE_WORD;
    const ERASE_SIZE: usize = F::ERASE_SIZE;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.0.erase(from, to).await
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.write(offset, bytes).await
    }
}

impl<F: MultiwriteNorFlash> MultiwriteNorFlash for WordFlash<F> {}

impl<F: MultiwriteNorFlash> ConfigStore<F> {
    /// A store on `range` of `flash`; `None` when the range is not at least two whole
    /// erase sectors or the flash's write unit does not divide [`STORE_WORD`].
    pub fn new(flash: F, range: Range<u32>) -> Option<Self> {
        if F::WRITE_SIZE == 0 || STORE_WORD % F::WRITE_SIZE != 0 {
            return None;
        }
        let flash = WordFlash(flash);
        let config = MapConfig::try_new(range.clone()).ok()?;
        Some(ConfigStore {
            map: Some(MapStorage::new(flash, config, Cache::new_uncached())),
            range,
            buf: [0; BUFFER],
        })
    }

    /// Reads the saved configuration. Never fails: an unusable store gives the
    /// defaults and says why. Each item carries its own CRC, so a damaged newest
    /// record gives the one saved before it; a written store without any usable
    /// record is [`Loaded::Damaged`], never a silent [`Loaded::NoRecord`].
    pub async fn load(&mut self) -> Loaded {
        // Before fetching: sequential-storage repairs (erases) what it finds damaged.
        let blank = self.is_blank().await;
        let Some(map) = self.map.as_mut() else {
            return Loaded::Damaged;
        };
        match map.fetch_item::<&[u8]>(&mut self.buf, &CONFIG_KEY).await {
            Ok(Some(bytes)) => match decode(bytes) {
                Ok(c) => Loaded::Saved(c),
                Err(e) => Loaded::Invalid(e),
            },
            Ok(None) if blank => Loaded::NoRecord,
            Ok(None) | Err(_) => Loaded::Damaged,
        }
    }

    /// True when every byte of the store reads erased (0xFF).
    async fn is_blank(&mut self) -> bool {
        let Some(map) = self.map.take() else {
            return false;
        };
        let (mut flash, cache) = map.destroy();
        let mut blank = true;
        let mut chunk = [0u8; 64];
        let mut at = self.range.start;
        while blank && at < self.range.end {
            let n = (self.range.end - at).min(chunk.len() as u32) as usize;
            blank = flash.0.read(at, &mut chunk[..n]).await.is_ok()
                && chunk[..n].iter().all(|&b| b == 0xFF);
            at += n as u32;
        }
        self.map = MapConfig::try_new(self.range.clone())
            .ok()
            .map(|config| MapStorage::new(flash, config, cache));
        blank
    }

    /// Saves `config` (the caller validated it). May erase a sector: see
    /// [`worst_case_save_ms`](Self::worst_case_save_ms).
    pub async fn save(&mut self, config: &Config) -> Result<(), SaveError> {
        let mut record = [0u8; MAX_RECORD];
        let n = encode(config, &mut record);
        let value: &[u8] = &record[..n];
        let map = self.map.as_mut().ok_or(SaveError::Flash)?;
        map.store_item(&mut self.buf, &CONFIG_KEY, &value)
            .await
            .map_err(|_| SaveError::Flash)
    }

    /// Erases the whole store (a damaged store is repaired this way; the defaults
    /// then apply).
    pub async fn erase(&mut self) -> Result<(), SaveError> {
        let map = self.map.as_mut().ok_or(SaveError::Flash)?;
        map.erase_all().await.map_err(|_| SaveError::Flash)
    }

    /// How long a save may keep the flash busy, with the given erase and page-program
    /// times: at most one sector erase (sequential-storage frees one sector when the
    /// current one is full) and the programming of one record.
    pub const fn worst_case_save_ms(erase_ms: u32, page_program_ms: u32) -> u32 {
        let pages = (BUFFER as u32).div_ceil(256) + 1;
        erase_ms + pages * page_program_ms
    }

    /// The flash back (for a simulated reboot in tests, or to reuse it).
    pub fn into_flash(self) -> Option<F> {
        self.map.map(|m| m.destroy().0.0)
    }
}
