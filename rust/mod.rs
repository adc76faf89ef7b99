// SPDX-License-Identifier: GPL-2.0

//! Kernel-side abstractions the `kernel` crate of Linux 7.3 lacks.
//!
//! Every call into C, and every instruction the rest of the module needs,
//! lives here behind a safe function with its safety argument next to it.
//! Nothing outside this directory uses `kernel::bindings` directly.

pub(crate) mod coco;
pub(crate) mod cpu;
pub(crate) mod cred;
pub(crate) mod directmap;
pub(crate) mod fault_inject;
pub(crate) mod insn;
pub(crate) mod memory;
pub(crate) mod msr;
pub(crate) mod page_ref;
pub(crate) mod param;
pub(crate) mod rmp_ops;
pub(crate) mod sched;
pub(crate) mod task;
pub(crate) mod user_pages;
