// SPDX-License-Identifier: GPL-2.0

//! The three 16-byte RMP formats: the in-table entry, the RMPREAD record and the
//! RMPUPDATE new state, each declared once, with decoders that reject invalid encodings.
//!
//! The in-table [`Entry`] is not architectural: its layout is the one the PPR for family
//! 19h documents and Linux decodes on processors without RMPREAD (the high quadword as the
//! SEV firmware describes it). Bits this model does not interpret are carried through
//! untouched, so a read-modify-write never clobbers state the CPU or the firmware keep
//! there. [`Record`] (RMPREAD output) and [`State`] (RMPUPDATE input) are architectural
//! (AMD APM vol. 3) and byte-compatible with Linux's `struct rmpentry` and
//! `struct rmp_state`.

use super::bits::{
    bitfield,
    Field, //
};

/// log2 of the size of a 4 KiB page.
pub const PAGE_SHIFT: u32 = 12;

/// Number of 4 KiB pages, and so of RMP entries, in a 2 MiB page.
pub const PAGES_PER_2M: u64 = 512;

/// The largest ASID an in-table entry can record (its ASID field is 10 bits wide).
pub const MAX_ASID: u32 = 1023;

/// Guest physical addresses an entry can record lie below this bound (39-bit frame field).
pub const GPA_LIMIT: u64 = 1 << 51;

/// Why a 16-byte record or one of its fields does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A reserved field is not zero.
    Reserved,
    /// A byte that holds a flag is neither 0 nor 1.
    Flag,
    /// A page-size encoding other than 0 (4K) or 1 (2M).
    PageSize,
    /// A VMPL number above 3.
    #[allow(
        dead_code,
        reason = "VMPLs are decoded by the host crate's guest side only"
    )]
    Vmpl,
    /// An address is not aligned to the page it names.
    Unaligned,
    /// A value lies outside what the hardware can record (an ASID above [`MAX_ASID`] or
    /// 0 for an assigned page, a GPA at or above [`GPA_LIMIT`]).
    Range,
    /// Fields contradict each other (a validated or VMSA page that is not assigned, a
    /// shared page with an ASID or the immutable bit).
    Inconsistent,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self {
            Self::Reserved => "reserved field is not zero",
            Self::Flag => "flag byte is neither 0 nor 1",
            Self::PageSize => "invalid RMP page size",
            Self::Vmpl => "invalid VMPL",
            Self::Unaligned => "address not aligned to its page size",
            Self::Range => "value out of range",
            Self::Inconsistent => "fields contradict each other",
        };
        f.write_str(what)
    }
}

/// The page size of an RMP entry (`RMP_PG_SIZE_4K`/`RMP_PG_SIZE_2M` in Linux).
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::PageSize;
///
/// assert_eq!(PageSize::try_from(1u8), Ok(PageSize::Size2M));
/// assert!(PageSize::try_from(2u8).is_err());
/// assert_eq!(PageSize::Size2M.align_down(0x1234), 0x1200);
/// assert!(PageSize::Size2M.is_aligned(0x1200) && !PageSize::Size2M.is_aligned(0x1201));
/// assert_eq!(PageSize::Size2M.pages(), 512);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PageSize {
    /// A 4 KiB page.
    #[default]
    Size4K,
    /// A 2 MiB page, described by the entry of its first (2M-aligned) 4K page.
    Size2M,
}

impl PageSize {
    /// Returns the hardware encoding (0 for 4K, 1 for 2M).
    pub const fn encoding(self) -> u8 {
        match self {
            Self::Size4K => 0,
            Self::Size2M => 1,
        }
    }

    /// Returns the number of 4K pages in a page of this size.
    pub const fn pages(self) -> u64 {
        match self {
            Self::Size4K => 1,
            Self::Size2M => PAGES_PER_2M,
        }
    }

    /// Returns the size in bytes.
    pub const fn bytes(self) -> u64 {
        self.pages() << PAGE_SHIFT
    }

    /// Returns the first PFN of the page of this size that contains `pfn`.
    pub const fn align_down(self, pfn: u64) -> u64 {
        pfn & !(self.pages() - 1)
    }

    /// Returns whether `pfn` is the first PFN of a page of this size.
    pub const fn is_aligned(self, pfn: u64) -> bool {
        pfn & (self.pages() - 1) == 0
    }
}

impl TryFrom<u8> for PageSize {
    type Error = DecodeError;

    fn try_from(value: u8) -> Result<Self, DecodeError> {
        match value {
            0 => Ok(Self::Size4K),
            1 => Ok(Self::Size2M),
            _ => Err(DecodeError::PageSize),
        }
    }
}

impl Field for PageSize {
    const BITS: u32 = 1;

    fn from_bits(bits: u64) -> Self {
        if bits == 0 {
            Self::Size4K
        } else {
            Self::Size2M
        }
    }

    fn into_bits(self) -> u64 {
        u64::from(self.encoding())
    }
}

/// The access rights one VMPL holds on a page (a VMPL permission mask).
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::Perms;
///
/// let rw = Perms::READ.union(Perms::WRITE);
/// assert!(Perms::ALL.contains(rw) && rw.contains(Perms::READ) && !rw.contains(Perms::ALL));
/// assert_eq!(Perms::try_from(0x03u8), Ok(rw));
/// assert!(Perms::try_from(0x20u8).is_err()); // bits 7:5 are reserved
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Perms(u8);

impl Perms {
    /// No access.
    pub const NONE: Self = Self(0);
    /// Every permission; what VMPL0 holds on an assigned page.
    pub const ALL: Self = Self(0x1f);
}

// The rights one by one, as RMPADJUST grants them and the access checks test them: the
// guest side of the host crate (`rmp::guest`, `rmp::access`) uses them; the module only
// ever grants everything or nothing.
#[allow(
    dead_code,
    reason = "used by the host crate's guest side and tests only"
)]
impl Perms {
    /// Data reads.
    pub const READ: Self = Self(1 << 0);
    /// Data writes.
    pub const WRITE: Self = Self(1 << 1);
    /// Instruction fetches at CPL3.
    pub const EXEC_USER: Self = Self(1 << 2);
    /// Instruction fetches at CPL0 to CPL2.
    pub const EXEC_SUPERVISOR: Self = Self(1 << 3);
    /// Use as a supervisor shadow-stack page.
    pub const SHADOW_STACK: Self = Self(1 << 4);

    /// Returns the mask as the hardware encodes it.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Returns whether every right in `other` is also in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Returns the rights in `self`, `other` or both.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl TryFrom<u8> for Perms {
    type Error = DecodeError;

    fn try_from(value: u8) -> Result<Self, DecodeError> {
        if value & !Self::ALL.0 == 0 {
            Ok(Self(value))
        } else {
            Err(DecodeError::Reserved)
        }
    }
}

impl Field for Perms {
    const BITS: u32 = 8;

    // The raw table may hold bits this model does not know; keep them so that they
    // are written back unchanged.
    fn from_bits(bits: u64) -> Self {
        Self(u8::from_bits(bits))
    }

    fn into_bits(self) -> u64 {
        u64::from(self.0)
    }
}

bitfield! {
    /// Low quadword of an in-table RMP entry (PPR family 19h layout).
    pub struct EntryLo {
        /// The page is assigned to a guest or to the firmware.
        0:0 assigned, with_assigned: bool;
        /// Page size; a 2M entry lives in the entry of its 2M-aligned 4K page.
        1:1 page_size, with_page_size: PageSize;
        /// Only the firmware may change the entry.
        2:2 immutable, with_immutable: bool;
        /// Firmware/CPU bookkeeping (count of 4K-assigned pages of the 2M region);
        /// reserved to software, never written by this model.
        11:3 subpage_count, with_subpage_count: u16;
        /// Guest physical frame number the page is mapped at.
        50:12 gpa_frame, with_gpa_frame: u64;
        /// ASID of the owning guest; 0 for the hypervisor and the firmware.
        60:51 asid, with_asid: u16;
        /// The page is a VM save area.
        61:61 vmsa, with_vmsa: bool;
        /// The guest validated the page with PVALIDATE.
        62:62 validated, with_validated: bool;
        /// Firmware lock; reserved to software, never written by this model.
        63:63 lock, with_lock: bool;
    }
}

bitfield! {
    /// High quadword of an in-table RMP entry: the VMPL permission masks.
    ///
    /// Bits 63:32 belong to the firmware (key selection, trusted I/O, migration) and
    /// are preserved untouched.
    pub struct EntryHi {
        /// Rights of VMPL0.
        7:0 vmpl0, with_vmpl0: Perms;
        /// Rights of VMPL1.
        15:8 vmpl1, with_vmpl1: Perms;
        /// Rights of VMPL2.
        23:16 vmpl2, with_vmpl2: Perms;
        /// Rights of VMPL3.
        31:24 vmpl3, with_vmpl3: Perms;
    }
}

/// A raw 16-byte entry of the RMP table, exactly as it sits in memory.
///
/// Every bit pattern is representable, so reading a table never fails; bits the model
/// does not interpret survive every `with_*` builder. [`Entry::to_record`] is the
/// checked decoder.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{Entry, PageSize};
///
/// let raw = 0x4000_0000_0000_0000 | (5 << 51) | (0x1234 << 12) | 0b011;
/// let e = Entry::from_qwords(raw | (0x7 << 3), 0);
/// assert!(e.assigned() && e.validated() && e.page_size() == PageSize::Size2M);
/// assert_eq!((e.asid(), e.gpa()), (5, 0x123_4000));
/// // A builder changes one field and keeps the firmware's bits 11:3.
/// assert_eq!(e.with_validated(false).lo().raw(), raw & !(1 << 62) | (0x7 << 3));
/// assert_eq!(Entry::from_bytes(&e.to_bytes()), e);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Entry {
    lo: EntryLo,
    hi: EntryHi,
}

impl Entry {
    /// Builds an entry from its two quadwords.
    pub const fn from_qwords(lo: u64, hi: u64) -> Self {
        Self {
            lo: EntryLo::from_raw(lo),
            hi: EntryHi::from_raw(hi),
        }
    }

    /// Builds an entry from its 16 bytes (little-endian quadwords, low one first).
    #[allow(
        dead_code,
        reason = "byte form: host tests and fuzzing; the module passes records by pointer"
    )]
    pub fn from_bytes(bytes: &[u8; 16]) -> Self {
        let (lo, hi) = split_qwords(bytes);
        Self::from_qwords(lo, hi)
    }

    /// Returns the 16 bytes of the entry as they sit in the table.
    #[allow(
        dead_code,
        reason = "byte form: host tests and fuzzing; the module passes records by pointer"
    )]
    pub fn to_bytes(self) -> [u8; 16] {
        join_qwords(self.lo.raw(), self.hi.raw())
    }

    /// Returns the low quadword.
    pub const fn lo(&self) -> EntryLo {
        self.lo
    }

    /// Returns the high quadword.
    pub const fn hi(&self) -> EntryHi {
        self.hi
    }

    /// Returns whether all 128 bits are zero (the state of a never-touched page).
    pub const fn is_zero(&self) -> bool {
        self.lo.raw() == 0 && self.hi.raw() == 0
    }

    /// Returns whether the page is assigned.
    pub fn assigned(&self) -> bool {
        self.lo.assigned()
    }

    /// Returns the page size recorded in this entry.
    pub fn page_size(&self) -> PageSize {
        self.lo.page_size()
    }

    /// Returns whether the entry is immutable.
    pub fn immutable(&self) -> bool {
        self.lo.immutable()
    }

    /// Returns the guest physical address of the page.
    pub fn gpa(&self) -> u64 {
        self.lo.gpa_frame() << PAGE_SHIFT
    }

    /// Returns the owner's ASID.
    pub fn asid(&self) -> u32 {
        u32::from(self.lo.asid())
    }

    /// Returns whether the guest validated the page.
    pub fn validated(&self) -> bool {
        self.lo.validated()
    }

    /// Returns a copy with the page size set to `size`.
    #[must_use]
    pub fn with_page_size(self, size: PageSize) -> Self {
        Self {
            lo: self.lo.with_page_size(size),
            ..self
        }
    }

    /// Returns a copy with the guest physical address set to `gpa`.
    ///
    /// `gpa` must be 4K-aligned and below [`GPA_LIMIT`]; other bits are dropped.
    #[must_use]
    pub fn with_gpa(self, gpa: u64) -> Self {
        Self {
            lo: self.lo.with_gpa_frame(gpa >> PAGE_SHIFT),
            ..self
        }
    }

    /// Returns a copy describing a hypervisor-owned (shared) page: every architectural
    /// field cleared, the bits the firmware keeps left as they are.
    #[must_use]
    pub fn cleared(self) -> Self {
        let lo = EntryLo::default()
            .with_subpage_count(self.lo.subpage_count())
            .with_lock(self.lo.lock());
        let hi = self
            .hi
            .with_vmpl0(Perms::NONE)
            .with_vmpl1(Perms::NONE)
            .with_vmpl2(Perms::NONE)
            .with_vmpl3(Perms::NONE);
        Self { lo, hi }
    }

    /// Returns a copy describing a page newly assigned by RMPUPDATE: owner, address,
    /// size and immutability as given, validated and VMSA clear, full rights for
    /// VMPL0 and none for the other VMPLs.
    #[must_use]
    pub fn assigned_to(self, gpa: u64, size: PageSize, asid: u16, immutable: bool) -> Self {
        let lo = self
            .cleared()
            .lo
            .with_assigned(true)
            .with_page_size(size)
            .with_immutable(immutable)
            .with_gpa_frame(gpa >> PAGE_SHIFT)
            .with_asid(asid);
        Self {
            lo,
            hi: self.cleared().hi.with_vmpl0(Perms::ALL),
        }
    }

    /// Returns a copy carrying the architectural fields of `other` (ownership, address,
    /// size, flags, rights) and this entry's firmware-owned bits.
    #[must_use]
    pub fn with_attributes_of(self, other: Entry) -> Self {
        let lo = other
            .lo
            .with_subpage_count(self.lo.subpage_count())
            .with_lock(self.lo.lock());
        let hi = self
            .hi
            .with_vmpl0(other.hi.vmpl0())
            .with_vmpl1(other.hi.vmpl1())
            .with_vmpl2(other.hi.vmpl2())
            .with_vmpl3(other.hi.vmpl3());
        Self { lo, hi }
    }

    /// Maps the entry onto the RMPREAD format the way Linux does on processors without
    /// RMPREAD: the fields the record has, nothing else, and no checks.
    ///
    /// This is the decoder for entries read from the live table. Bits it does not
    /// interpret (the firmware's bits 11:3 and 63, the high quadword, bits a later
    /// processor may define) cannot change the result, so a table written by newer
    /// firmware still reads; the 2M region status is not computed (Linux does not either).
    ///
    /// # Examples
    ///
    /// ```
    /// use snp_host_model::rmp::model::{Entry, PageSize};
    ///
    /// let lo = 1 | (1 << 1) | (0x40 << 12) | (3 << 51);
    /// let plain = Entry::from_qwords(lo, 0).as_record();
    /// // The firmware's sub-page count and lock bit, and the VMPL masks, do not matter.
    /// let busy = Entry::from_qwords(lo | (0x1ff << 3) | (1 << 63), u64::MAX).as_record();
    /// assert_eq!(plain, busy);
    /// assert!(plain.assigned() && plain.page_size() == PageSize::Size2M);
    /// assert_eq!((plain.gpa(), plain.asid()), (0x4_0000, 3));
    /// ```
    pub fn as_record(&self) -> Record {
        let attrs = RecordAttrs::default()
            .with_assigned(self.assigned())
            .with_page_size(self.page_size())
            .with_immutable(self.immutable())
            .with_asid(self.asid());
        Record {
            gpa: self.gpa(),
            attrs,
        }
    }
}

bitfield! {
    /// Second quadword of an RMPREAD record.
    pub struct RecordAttrs {
        /// The page is assigned.
        0:0 assigned, with_assigned: bool;
        /// Reserved, must be zero.
        7:1 reserved1, with_reserved1: u8;
        /// Page size of the entry that governs the page.
        8:8 page_size, with_page_size: PageSize;
        /// For a 2M-aligned page described at 4K: some 4K page of its 2M region is
        /// assigned (the APM's "2MB region status").
        9:9 region_4k, with_region_4k: bool;
        /// Reserved, must be zero.
        15:10 reserved2, with_reserved2: u8;
        /// The entry is immutable.
        16:16 immutable, with_immutable: bool;
        /// Reserved, must be zero.
        31:17 reserved3, with_reserved3: u16;
        /// ASID of the owner.
        63:32 asid, with_asid: u32;
    }
}

/// The architectural 16-byte record RMPREAD returns (Linux's `struct rmpentry`).
///
/// Only valid records exist: [`Record::from_bytes`] checks reserved bits and alignment.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{DecodeError, PageSize, Record};
///
/// let mut bytes = [0u8; 16];
/// bytes[..8].copy_from_slice(&0x20_0000u64.to_le_bytes());
/// bytes[8] = 1; // assigned
/// bytes[9] = 1; // 2M
/// bytes[12..].copy_from_slice(&7u32.to_le_bytes());
/// let r = Record::from_bytes(&bytes)?;
/// assert!(r.assigned() && r.page_size() == PageSize::Size2M && !r.immutable());
/// assert_eq!((r.gpa(), r.asid()), (0x20_0000, 7));
/// assert_eq!(r.to_bytes(), bytes);
///
/// bytes[8] = 3; // a reserved bit
/// assert_eq!(Record::from_bytes(&bytes), Err(DecodeError::Reserved));
/// # Ok::<(), DecodeError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Record {
    gpa: u64,
    attrs: RecordAttrs,
}

impl Record {
    /// Decodes 16 bytes as a valid record, strictly: the checked decoder the host crate's
    /// tests and fuzz targets use ([`Record::from_rmpread`] is what the hardware backend
    /// uses).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Reserved`] if a reserved bit is set, [`DecodeError::Unaligned`] if
    /// the GPA is not 4K-aligned.
    #[allow(
        dead_code,
        reason = "the host crate's strict decoder; the module reads with from_rmpread"
    )]
    pub fn from_bytes(bytes: &[u8; 16]) -> Result<Self, DecodeError> {
        let (gpa, attrs) = split_qwords(bytes);
        let attrs = RecordAttrs::from_raw(attrs);
        if attrs.reserved1() != 0 || attrs.reserved2() != 0 || attrs.reserved3() != 0 {
            return Err(DecodeError::Reserved);
        }
        if gpa & !(u64::MAX << PAGE_SHIFT) != 0 {
            return Err(DecodeError::Unaligned);
        }
        Ok(Self { gpa, attrs })
    }

    /// Decodes what RMPREAD wrote, as the two quadwords of its naturally aligned operand,
    /// the way Linux reads it: bits the record does not define are ignored, not
    /// rejected.
    ///
    /// A later processor may define bits that are reserved today; rejecting them would
    /// make every lookup on it fail. The ignored bits are returned so that the caller can
    /// say so once in the log.
    ///
    /// # Examples
    ///
    /// ```
    /// use snp_host_model::rmp::model::{PageSize, Record};
    ///
    /// // Assigned, 2M, ASID 7, with reserved bit 3 and GPA bit 0 set.
    /// let (r, ignored) = Record::from_rmpread([0x20_0001, (7 << 32) | (1 << 8) | (1 << 3) | 1]);
    /// assert!(r.assigned() && r.page_size() == PageSize::Size2M);
    /// assert_eq!((r.gpa(), r.asid()), (0x20_0000, 7));
    /// assert_eq!((ignored.gpa, ignored.attrs), (1, 1 << 3));
    /// assert!(!Record::from_rmpread([0x20_0000, 1]).1.any());
    /// ```
    pub fn from_rmpread(raw: [u64; 2]) -> (Self, Ignored) {
        let [gpa, attrs] = raw;
        let known = RecordAttrs::from_raw(attrs)
            .with_reserved1(0)
            .with_reserved2(0)
            .with_reserved3(0);
        let page = gpa & (u64::MAX << PAGE_SHIFT);
        let ignored = Ignored {
            gpa: gpa ^ page,
            attrs: attrs ^ known.raw(),
        };
        (
            Self {
                gpa: page,
                attrs: known,
            },
            ignored,
        )
    }

    /// Returns the 16 bytes of the record.
    #[allow(
        dead_code,
        reason = "byte form: host tests and fuzzing; the module passes records by pointer"
    )]
    pub fn to_bytes(self) -> [u8; 16] {
        join_qwords(self.gpa, self.attrs.raw())
    }

    /// Returns the guest physical address of the page.
    pub fn gpa(&self) -> u64 {
        self.gpa
    }

    /// Returns whether the page is assigned.
    pub fn assigned(&self) -> bool {
        self.attrs.assigned()
    }

    /// Returns the page size of the entry that governs the page.
    pub fn page_size(&self) -> PageSize {
        self.attrs.page_size()
    }

    /// Returns whether the page's entry is immutable.
    pub fn immutable(&self) -> bool {
        self.attrs.immutable()
    }

    /// Returns the owner's ASID.
    pub fn asid(&self) -> u32 {
        self.attrs.asid()
    }

    /// Returns the 2M region status: set for a 2M-aligned page described at 4K when
    /// some 4K page of its 2M region is assigned.
    #[allow(
        dead_code,
        reason = "read by the host crate's tests; the module has no use for it (Linux neither)"
    )]
    pub fn region_4k(&self) -> bool {
        self.attrs.region_4k()
    }

    /// Returns a copy with the 2M region status set to `region_4k`.
    #[must_use]
    pub(super) fn with_region_4k(self, region_4k: bool) -> Self {
        Self {
            attrs: self.attrs.with_region_4k(region_4k),
            ..self
        }
    }
}

/// Bits of an RMPREAD result that [`Record::from_rmpread`] ignored because the record
/// format does not define them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ignored {
    /// Bits 11:0 of the GPA quadword.
    pub gpa: u64,
    /// Reserved bits of the attribute quadword, in place.
    pub attrs: u64,
}

impl Ignored {
    /// Returns whether any bit was ignored.
    pub const fn any(&self) -> bool {
        self.gpa != 0 || self.attrs != 0
    }
}

bitfield! {
    /// Second quadword of an RMPUPDATE new-state record.
    pub struct StateAttrs {
        /// 1 to assign the page, 0 to make it hypervisor-owned.
        7:0 assigned, with_assigned: u8;
        /// Page size encoding.
        15:8 page_size, with_page_size: u8;
        /// 1 to make the entry immutable.
        23:16 immutable, with_immutable: u8;
        /// Reserved, must be zero.
        31:24 reserved, with_reserved: u8;
        /// ASID of the new owner.
        63:32 asid, with_asid: u32;
    }
}

/// The 16-byte record RMPUPDATE reads through RCX (Linux's `struct rmp_state`).
///
/// It holds whatever the caller put in it, like the hardware's operand; the
/// instruction, and [`State::decode`], decide whether it is valid. The layout is
/// `#[repr(C)]`, so a pointer to a `State` is the RMPUPDATE operand.
///
/// # Examples
///
/// ```
/// use snp_host_model::rmp::model::{DecodeError, PageSize, State, Target};
///
/// let s = State::private(0x40_0000, PageSize::Size2M, 3, false);
/// assert_eq!(
///     s.decode(),
///     Ok(Target::Private { gpa: 0x40_0000, size: PageSize::Size2M, asid: 3, immutable: false })
/// );
/// assert_eq!(State::from_bytes(&s.to_bytes()), s);
/// // ASID 0 is the hypervisor's: it cannot own a page.
/// assert_eq!(State::private(0, PageSize::Size4K, 0, false).decode(), Err(DecodeError::Range));
/// assert_eq!(State::shared(PageSize::Size4K).decode(), Ok(Target::Shared { size: PageSize::Size4K }));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct State {
    gpa: u64,
    attrs: StateAttrs,
}

// The instructions take these records through a pointer: 16 bytes, aligned as their
// first member (Linux's structs are `__packed` but their users are naturally aligned).
const _: () = assert!(core::mem::size_of::<State>() == 16 && core::mem::align_of::<State>() == 8);
const _: () = assert!(core::mem::size_of::<Record>() == 16 && core::mem::align_of::<Record>() == 8);

/// A decoded, valid RMPUPDATE request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Make the page (4K) or the 2M region (2M) hypervisor-owned.
    Shared {
        /// Page size of the update.
        size: PageSize,
    },
    /// Assign the page to a guest.
    Private {
        /// Guest physical address, aligned to `size`.
        gpa: u64,
        /// Page size of the update.
        size: PageSize,
        /// Owner, 1 to [`MAX_ASID`].
        asid: u16,
        /// Whether only the firmware may change the entry afterwards.
        immutable: bool,
    },
}

impl Target {
    /// Returns the page size of the update.
    pub fn size(&self) -> PageSize {
        match *self {
            Self::Shared { size } | Self::Private { size, .. } => size,
        }
    }
}

impl State {
    /// Returns whether the request assigns the page to a guest (rather than giving it
    /// back to the host).
    ///
    /// ```
    /// # use snp_host_model::rmp::model::{PageSize, State};
    /// assert!(State::private(0x1000, PageSize::Size4K, 1, false).assigns());
    /// assert!(!State::shared(PageSize::Size4K).assigns());
    /// ```
    pub fn assigns(&self) -> bool {
        self.attrs.assigned() != 0
    }

    /// Builds the request that assigns a page, as Linux's `rmp_make_private()` does.
    pub fn private(gpa: u64, size: PageSize, asid: u32, immutable: bool) -> Self {
        Self {
            gpa,
            attrs: StateAttrs::default()
                .with_assigned(1)
                .with_page_size(size.encoding())
                .with_immutable(u8::from(immutable))
                .with_asid(asid),
        }
    }

    /// Builds the request that makes a page hypervisor-owned (`rmp_make_shared()`).
    pub fn shared(size: PageSize) -> Self {
        Self {
            gpa: 0,
            attrs: StateAttrs::default().with_page_size(size.encoding()),
        }
    }

    /// Wraps 16 raw bytes (little-endian quadwords), valid or not.
    #[allow(
        dead_code,
        reason = "byte form: host tests and fuzzing; the module passes records by pointer"
    )]
    pub fn from_bytes(bytes: &[u8; 16]) -> Self {
        let (gpa, attrs) = split_qwords(bytes);
        Self {
            gpa,
            attrs: StateAttrs::from_raw(attrs),
        }
    }

    /// Returns the 16 bytes of the record.
    #[allow(
        dead_code,
        reason = "byte form: host tests and fuzzing; the module passes records by pointer"
    )]
    pub fn to_bytes(self) -> [u8; 16] {
        join_qwords(self.gpa, self.attrs.raw())
    }

    /// Checks the request the way RMPUPDATE does before it touches the table.
    ///
    /// A shared request ignores the GPA (Linux leaves it zero); the model rejects an ASID
    /// or the immutable bit on it, since only the firmware makes hypervisor pages
    /// immutable.
    ///
    /// # Errors
    ///
    /// The [`DecodeError`] naming the first invalid field; RMPUPDATE reports every one of
    /// them as `FAIL_INPUT`.
    pub fn decode(&self) -> Result<Target, DecodeError> {
        let a = self.attrs;
        if a.reserved() != 0 {
            return Err(DecodeError::Reserved);
        }
        let size = PageSize::try_from(a.page_size())?;
        let assigned = flag(a.assigned())?;
        let immutable = flag(a.immutable())?;
        if !assigned {
            return if a.asid() != 0 || immutable {
                Err(DecodeError::Inconsistent)
            } else {
                Ok(Target::Shared { size })
            };
        }
        let asid = u16::try_from(a.asid()).map_err(|_| DecodeError::Range)?;
        if asid == 0 || u32::from(asid) > MAX_ASID || self.gpa >= GPA_LIMIT {
            return Err(DecodeError::Range);
        }
        if self.gpa & (size.bytes() - 1) != 0 {
            return Err(DecodeError::Unaligned);
        }
        Ok(Target::Private {
            gpa: self.gpa,
            size,
            asid,
            immutable,
        })
    }
}

/// Decodes a byte that holds a flag.
fn flag(byte: u8) -> Result<bool, DecodeError> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::Flag),
    }
}

/// Splits 16 bytes into two little-endian quadwords, low one first.
#[allow(
    dead_code,
    reason = "byte form: host tests and fuzzing; the module passes records by pointer"
)]
fn split_qwords(bytes: &[u8; 16]) -> (u64, u64) {
    let [l0, l1, l2, l3, l4, l5, l6, l7, h0, h1, h2, h3, h4, h5, h6, h7] = *bytes;
    (
        u64::from_le_bytes([l0, l1, l2, l3, l4, l5, l6, l7]),
        u64::from_le_bytes([h0, h1, h2, h3, h4, h5, h6, h7]),
    )
}

/// Joins two quadwords into 16 little-endian bytes, low one first.
#[allow(
    dead_code,
    reason = "byte form: host tests and fuzzing; the module passes records by pointer"
)]
fn join_qwords(lo: u64, hi: u64) -> [u8; 16] {
    let [l0, l1, l2, l3, l4, l5, l6, l7] = lo.to_le_bytes();
    let [h0, h1, h2, h3, h4, h5, h6, h7] = hi.to_le_bytes();
    [
        l0, l1, l2, l3, l4, l5, l6, l7, h0, h1, h2, h3, h4, h5, h6, h7,
    ]
}
