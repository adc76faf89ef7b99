// SPDX-License-Identifier: GPL-2.0

//! The kernel's fault-injection framework (`linux/fault-inject.h`) for the
//! module's own failure points.
//!
//! A [`FaultAttr`] is a `struct fault_attr`: tests configure it through the
//! directory [`FaultAttr::publish`] creates (`probability`, `interval`,
//! `times`, `space`, `verbose`, `task-filter`, as
//! `Documentation/fault-injection/fault-injection.rst` describes), and the code
//! it guards asks [`FaultAttr::should_fail`] before the operation it may fail.
//! Without `CONFIG_FAULT_INJECTION` nothing ever fails and nothing is created.

use kernel::{bindings, prelude::*, str::CStr, types::Opaque};

/// One failure point: a `struct fault_attr`.
///
/// # Invariants
///
/// The attribute is all zeroes until [`FaultAttr::init`] made it what
/// `FAULT_ATTR_INITIALIZER` gives; from then on only the fault-injection framework
/// and its debugfs files change it. All zeroes, `should_fail()` fails only a task
/// that asked for it through `/proc/<pid>/fail-nth`.
pub(crate) struct FaultAttr(Opaque<bindings::fault_attr>);

// SAFETY: The framework's fields are atomics or written only through debugfs
// (as for every C `DECLARE_FAULT_ATTR`); `should_fail()` may run concurrently.
unsafe impl Sync for FaultAttr {}

// SAFETY: As for `Sync`: a `fault_attr` holds no reference to its creator.
unsafe impl Send for FaultAttr {}

impl FaultAttr {
    /// A failure point that never fails until [`FaultAttr::init`].
    pub(crate) const fn new() -> Self {
        Self(Opaque::zeroed())
    }

    /// Gives the attribute the framework's defaults (nothing fails: probability 0),
    /// but `verbose` 0: a failure is counted, not reported with a stack trace.
    ///
    /// # Safety
    ///
    /// Nothing calls [`FaultAttr::should_fail`] on it, or reads it otherwise, until
    /// this returns: the struct is rewritten with plain stores.
    pub(crate) unsafe fn init(&'static self) {
        #[cfg(CONFIG_FAULT_INJECTION)]
        // SAFETY: The pointer is valid for the module's lifetime (`'static`); the
        // caller's contract excludes concurrent use while it is rewritten.
        unsafe {
            bindings::fault_attr_init(self.0.get());
            // Quiet by default: the framework's 2 prints a stack trace per failure.
            (*self.0.get()).verbose = 0;
        }
    }

    /// Whether the guarded operation must fail now, as the attribute says.
    pub(crate) fn should_fail(&'static self) -> bool {
        #[cfg(CONFIG_FAULT_INJECTION)]
        {
            // A point nobody turned on takes no part in a task's `fail-nth`
            // either, which counts every `should_fail()` call: a test that walks
            // the allocations of an operation means those, not this point.
            // SAFETY: The attribute is valid for the module's lifetime; debugfs may
            // write `probability` at any time, hence the one volatile read.
            let probability =
                unsafe { core::ptr::read_volatile(&raw const (*self.0.get()).probability) };
            if probability == 0 {
                return false;
            }
            // SAFETY: The attribute is valid, initialised or all zeroes (type
            // invariant), both of which `should_fail()` accepts; size 1: one unit of
            // the `space` budget.
            unsafe { bindings::should_fail(self.0.get(), 1) }
        }
        #[cfg(not(CONFIG_FAULT_INJECTION))]
        false
    }

    /// Creates `/sys/kernel/debug/<dir>/<name>/`, the attribute's files, in the
    /// debugfs directory `dir` of the module (which must exist). Removing `dir`
    /// removes them.
    ///
    /// # Errors
    ///
    /// `ENOENT` if `dir` does not exist; the framework's errno if it cannot create
    /// the files. Without `CONFIG_FAULT_INJECTION_DEBUG_FS`, `ENODEV`.
    pub(crate) fn publish(&'static self, dir: &CStr, name: &CStr) -> Result {
        #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
        {
            // SAFETY: `dir` is a valid string; a NULL parent is debugfs's root.
            let parent =
                unsafe { bindings::debugfs_lookup(dir.as_char_ptr(), core::ptr::null_mut()) };
            if parent.is_null() || kernel::error::from_err_ptr(parent).is_err() {
                return Err(ENOENT);
            }
            // SAFETY: `parent` is a live dentry we hold a reference on; `name` is a
            // valid string; the attribute is `'static`, so it outlives the files
            // (removed with `dir` before the module's memory goes).
            let made = unsafe {
                bindings::fault_create_debugfs_attr(name.as_char_ptr(), parent, self.0.get())
            };
            // SAFETY: The reference `debugfs_lookup()` took; the new files hold their own.
            unsafe { bindings::dput(parent) };
            kernel::error::from_err_ptr(made).map(|_| ())
        }
        #[cfg(not(CONFIG_FAULT_INJECTION_DEBUG_FS))]
        {
            let _ = (dir, name);
            Err(ENODEV)
        }
    }
}
