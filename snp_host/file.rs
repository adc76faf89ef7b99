// SPDX-License-Identifier: GPL-2.0

//! `/dev/snp_host`: the ioctl entry points of a file, which converts pages of the
//! process that opened it.
//!
//! A file belongs to the address space that opened it: its pages are keyed by
//! user address in that address space and charged to it (`VmPin`). An ioctl
//! that touches pages from another address space (a forked child, a process
//! that received the file over a socket) gets `EPERM` and changes nothing; the
//! read-only queries (`GET_STATUS`, `GET_STATS`) work from anywhere. Closing
//! the last reference returns everything, whoever closes.
//!
//! This file pins and checks; `convert.rs` changes state; `ledger.rs` tracks.

use crate::convert::{self, Candidate, Pending, BATCH_PAGES};
use crate::kernel_ext::{
    cred,
    user_pages::{self, PinAccount},
};
use crate::ledger::FilePages;
use crate::rmp::model::PageSize;
use crate::state::Shared;
use crate::uapi;
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    alloc::{flags::GFP_KERNEL_ACCOUNT, KVVec},
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    prelude::*,
    sync::Arc,
    uaccess::{UserPtr, UserSlice},
};

/// One open file of `/dev/snp_host`.
#[pin_data(PinnedDrop)]
pub(crate) struct FileState {
    shared: Arc<Shared>,
    /// The address space that opened the file, charged for what it pins.
    account: PinAccount,
    /// The pages this file assigned.
    #[pin]
    pages: FilePages,
}

/// `hva >> 12`, the key of a page in a file's tree.
fn key(hva: usize) -> u64 {
    // CAST: `usize` is 64 bits on x86-64.
    (hva >> user_pages::PAGE_SHIFT) as u64
}

/// Refuses (`EBUSY`) a page that is already a guest page, before it is pinned for
/// writing: with the user mappings of guest pages write-protected, the pin's write
/// fault would be refused (`EFAULT`), and would split the THP the page is in.
///
/// Returns whether the page lies in a huge mapping that already holds a guest page:
/// that mapping is read-only on purpose, so the page is pinned read-only (a write
/// pin would be refused for hugetlbfs, and split a THP).
fn check_not_owned(shared: &Shared, req: &uapi::PrivateRequest) -> Result<bool> {
    // A read-only look at every page: it faults nothing in for writing.
    let count = usize::try_from(req.size.pages()).map_err(|_| EINVAL)?;
    if user_pages::any_pfn(req.hva, count, |pfn| shared.owned.page(pfn))? {
        return Err(EBUSY);
    }
    let in_guest_region = req.size == PageSize::Size4K
        && user_pages::any_pfn(req.hva, 1, |pfn| {
            shared.owned.any(PageSize::Size2M.align_down(pfn), 512)
        })?;
    Ok(in_guest_region && shared.hooks.load(Relaxed))
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share a byte (ends saturate).
fn overlaps(a: u64, a_len: u64, b: u64, b_len: u64) -> bool {
    a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

/// Pins the page of `req` and checks that it can be assigned at its size.
fn pin_private(shared: &Shared, req: uapi::PrivateRequest) -> Result<Pending> {
    let read_only = check_not_owned(shared, &req)?;
    let hugetlb = shared.hooks.load(Relaxed);
    let count = usize::try_from(req.size.pages()).map_err(|_| EINVAL)?;
    let mut pinned = user_pages::pin_anon(req.hva, count, hugetlb, !read_only)?;
    let page = if req.size == PageSize::Size2M {
        let mut pins = KVec::with_capacity(pinned.len(), GFP_KERNEL_ACCOUNT)?;
        for p in pinned.drain_all() {
            // Cannot fail: the capacity is the number of pins.
            let _ = pins.push_within_capacity(p);
        }
        Candidate::huge(pins)?
    } else {
        Candidate::small(pinned.pop().ok_or(EFAULT)?)
    };
    Pending::new(key(req.hva), req, page)
}

/// Pins pages `first..first + count` of a range.
///
/// 4K pages are pinned with one call for the whole run, which is what makes a
/// range cheaper than page-by-page ioctls; if that fails, pages are pinned one by
/// one so that the error is reported at the page that caused it. Returns the pages
/// pinned, in order, and the error that stopped pinning, if any.
fn pin_range(
    shared: &Shared,
    req: &uapi::RangeRequest,
    first: u64,
    count: u64,
) -> Result<(KVVec<Pending>, Result)> {
    let hugetlb = shared.hooks.load(Relaxed);
    let n = usize::try_from(count).map_err(|_| EINVAL)?;
    let mut pending = KVVec::with_capacity(n, GFP_KERNEL_ACCOUNT)?;
    // A write pin of a page the module keeps read-only (a guest page, or any page of
    // a huge mapping that holds one) would fault, and be counted as a refused GUP
    // write of somebody else's: look read-only first, and take the page-by-page path,
    // which refuses or pins such pages without a write fault, if any is near a guest.
    let near_guest = || {
        user_pages::any_pfn(req.hva_of(first), n, |pfn| {
            shared.owned.any(PageSize::Size2M.align_down(pfn), 512)
        })
        .unwrap_or(true)
    };
    if req.size == PageSize::Size4K && !near_guest() {
        if let Ok(pins) = user_pages::pin_anon(req.hva_of(first), n, hugetlb, true) {
            for (i, pin) in (first..).zip(pins) {
                let page = req.private_page(i);
                let p = Pending::new(key(page.hva), page, Candidate::small(pin))?;
                // Cannot fail: the capacity is `n`, and there are `n` pins.
                let _ = pending.push_within_capacity(p);
            }
            return Ok((pending, Ok(())));
        }
    }
    for i in first..first + count {
        match pin_private(shared, req.private_page(i)) {
            Ok(p) => pending.push(p, GFP_KERNEL_ACCOUNT)?,
            Err(e) => return Ok((pending, Err(e))),
        }
    }
    Ok((pending, Ok(())))
}

impl FileState {
    /// Pins, charges and converts `count` pages of `size` of a range from page `first`.
    fn private_batch(&self, req: &uapi::RangeRequest, first: u64, count: u64) -> (u64, Result) {
        let mut charge = match self.account.charge(count * req.size.pages()) {
            Ok(c) => c,
            Err(e) => return (0, Err(e)),
        };
        let (pending, pinned) = match pin_range(&self.shared, req, first, count) {
            Ok(p) => p,
            Err(e) => return (0, Err(e)),
        };
        let (n, result) = convert::make_private(
            &self.shared,
            &self.pages,
            &self.account,
            pending,
            &mut charge,
        );
        (n, result.and(pinned))
    }

    fn lookup(&self, p: &mut uapi::Page) -> Result {
        let hva = p.lookup_request()?;
        let pfn = user_pages::current_pfn(hva)?;
        let backend = &self.shared.backend;
        let found = backend.lookup(pfn).map_err(convert::errno)?;
        // A page inside a 2M entry reports that entry.
        let at = if found.size == PageSize::Size2M && found.assigned() {
            PageSize::Size2M.align_down(pfn)
        } else {
            pfn
        };
        let r = backend.rmpread(at).map_err(convert::errno)?;
        p.pfn = pfn;
        p.assigned = u8::from(r.assigned());
        p.asid = r.asid();
        p.gpa = r.gpa();
        p.level = u8::from(r.assigned() && r.page_size() == PageSize::Size2M);
        p.immutable = u8::from(r.immutable());
        // 0 where the hardware does not report it (RMPREAD hosts), as the ABI says.
        p.validated = u8::from(backend.validated(pfn).unwrap_or(false));
        Ok(())
    }

    fn make_private(&self, p: &mut uapi::Page) -> Result {
        let req = p.private_request(self.shared.max_asid)?;
        self.shared.backend.check_immutable(req.immutable)?;
        let mut charge = self.account.charge(req.size.pages())?;
        let pending = pin_private(&self.shared, req)?;
        let pfn = pending.pfn();
        let mut one = KVVec::with_capacity(1, GFP_KERNEL_ACCOUNT)?;
        one.push(pending, GFP_KERNEL_ACCOUNT)?;
        convert::make_private(&self.shared, &self.pages, &self.account, one, &mut charge).1?;
        p.pfn = pfn;
        p.assigned = 1;
        p.validated = 0;
        Ok(())
    }

    fn make_shared(&self, p: &mut uapi::Page) -> Result {
        let (hva, size) = p.shared_request()?;
        let k = key(hva);
        let pfn = self
            .shared
            .ledger
            .open(&self.pages)
            .get(k, size)
            .ok_or(ENOENT)?;
        convert::make_shared(&self.shared, &self.pages, &self.account, &|_| k, 1, size).1?;
        p.pfn = pfn;
        p.assigned = 0;
        p.validated = 0;
        Ok(())
    }

    /// `SNP_HOST_CONVERT_RANGE`: converts in batches of [`BATCH_PAGES`] base pages,
    /// stopping between batches if the caller is being killed.
    fn convert_range(&self, r: &mut uapi::Range) -> Result {
        let req = r.request(self.shared.max_asid)?;
        self.shared
            .backend
            .check_immutable(req.to_private && req.immutable)?;
        let per_batch = (BATCH_PAGES / req.size.pages()).max(1);
        let mut done = 0;
        while done < req.npages {
            if done > 0 && convert::should_stop() {
                return Err(EINTR);
            }
            let count = per_batch.min(req.npages - done);
            let (converted, result) = if req.to_private {
                self.private_batch(&req, done, count)
            } else {
                let first = done;
                let key_of = |i: u64| key(req.hva_of(first + i));
                convert::make_shared(
                    &self.shared,
                    &self.pages,
                    &self.account,
                    &key_of,
                    count,
                    req.size,
                )
            };
            done += converted;
            r.done = done;
            result?;
        }
        Ok(())
    }

    fn psmash(&self, p: &mut uapi::Page) -> Result {
        let hva = p.psmash_request()?;
        p.pfn = convert::psmash(&self.shared, &self.pages, key(hva))?;
        Ok(())
    }

    fn page_ioctl(&self, cmd: u32, arg: usize) -> Result {
        let size = core::mem::size_of::<uapi::Page>();
        let mut page: uapi::Page = UserSlice::new(UserPtr::from_addr(arg), size)
            .reader()
            .read()?;
        // The answer must be able to reach the caller: a request whose struct cannot
        // be written back fails (EFAULT) before anything changes, not after; nor
        // can it live in the memory it gives a guest, which the module could not
        // write the answer to afterwards.
        if cmd == uapi::MAKE_PRIVATE {
            // An unknown level fails below. CAST: `usize` is 64 bits on x86-64.
            let len = uapi::page_size(page.level).unwrap_or(PageSize::Size4K);
            if overlaps(arg as u64, size as u64, page.hva, len.bytes()) {
                return Err(EINVAL);
            }
        }
        UserSlice::new(UserPtr::from_addr(arg), size)
            .writer()
            .write(&page)?;
        match cmd {
            uapi::LOOKUP => self.lookup(&mut page)?,
            uapi::MAKE_PRIVATE => self.make_private(&mut page)?,
            uapi::MAKE_SHARED => self.make_shared(&mut page)?,
            uapi::PSMASH => self.psmash(&mut page)?,
            _ => return Err(ENOTTY),
        }
        UserSlice::new(UserPtr::from_addr(arg), size)
            .writer()
            .write(&page)
    }
}

#[pinned_drop]
impl PinnedDrop for FileState {
    /// Closing the last reference returns every page the file assigned to the host.
    fn drop(self: Pin<&mut Self>) {
        convert::release_all(&self.shared, &self.pages, &self.account);
    }
}

#[vtable]
impl MiscDevice for FileState {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        if !cred::capable_sys_admin() {
            return Err(EPERM);
        }
        let shared = crate::shared_of(misc);
        let account = PinAccount::of_current()?;
        KBox::try_pin_init(
            try_pin_init!(Self {
                shared,
                account,
                pages <- FilePages::new(),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    fn ioctl(me: Pin<&FileState>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            uapi::GET_STATUS => {
                let size = core::mem::size_of::<uapi::Status>();
                UserSlice::new(UserPtr::from_addr(arg), size)
                    .writer()
                    .write(&me.shared.status())?;
            }
            uapi::GET_STATS => {
                let size = core::mem::size_of::<uapi::Stats>();
                UserSlice::new(UserPtr::from_addr(arg), size)
                    .writer()
                    .write(&me.shared.stats())?;
            }
            uapi::GET_FAULT_STATS => {
                let size = core::mem::size_of::<uapi::FaultStats>();
                UserSlice::new(UserPtr::from_addr(arg), size)
                    .writer()
                    .write(&me.shared.fault_stats())?;
            }
            uapi::GET_KVM_STATS => {
                let size = core::mem::size_of::<uapi::KvmStats>();
                UserSlice::new(UserPtr::from_addr(arg), size)
                    .writer()
                    .write(&me.shared.kvm_stats())?;
            }
            uapi::LOOKUP
            | uapi::MAKE_PRIVATE
            | uapi::MAKE_SHARED
            | uapi::PSMASH
            | uapi::CONVERT_RANGE
                if !me.account.is_current() =>
            {
                return Err(EPERM)
            }
            uapi::LOOKUP | uapi::MAKE_PRIVATE | uapi::MAKE_SHARED | uapi::PSMASH => {
                me.page_ioctl(cmd, arg)?
            }
            uapi::CONVERT_RANGE => {
                let size = core::mem::size_of::<uapi::Range>();
                let (mut reader, mut writer) =
                    UserSlice::new(UserPtr::from_addr(arg), size).reader_writer();
                let mut range: uapi::Range = reader.read()?;
                range.done = 0;
                // As for the page ioctls: a struct that cannot take the answer fails
                // the request before anything changes; written, it says so (`done`
                // 0), whatever fails next.
                UserSlice::new(UserPtr::from_addr(arg), size)
                    .writer()
                    .write(&range)?;
                // CAST: `usize` is 64 bits on x86-64.
                let len = uapi::page_size(range.level).unwrap_or(PageSize::Size4K);
                if range.to_private != 0
                    && overlaps(
                        arg as u64,
                        size as u64,
                        range.hva,
                        range.npages.saturating_mul(len.bytes()),
                    )
                {
                    return Err(EINVAL);
                }
                let result = me.convert_range(&mut range);
                // `done` goes back on failure too: it says what changed.
                writer.write(&range)?;
                result?;
            }
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }
}
