/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * User-space interface of snp_host.ko, the SEV-SNP host memory manager.
 *
 * /dev/snp_host (root only, CAP_SYS_ADMIN to open) converts the caller's own
 * anonymous private pages between hypervisor-owned (shared) and guest-owned
 * (private) in the RMP.  Every struct is naturally aligned and its size is
 * part of the ABI; reserved fields must be zero on input, else EINVAL.
 */
#ifndef _UAPI_LINUX_SNP_HOST_H
#define _UAPI_LINUX_SNP_HOST_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define SNP_HOST_IOCTL_TYPE		0xB9

/* snp_host_status.backend */
#define SNP_HOST_BACKEND_HARDWARE	1
#define SNP_HOST_BACKEND_EMULATED	2

/* snp_host_status.flags */
#define SNP_HOST_FLAG_RMPREAD		(1U << 0)	/* the CPU has RMPREAD */
#define SNP_HOST_FLAG_SEGMENTED_RMP	(1U << 1)	/* the RMP is segmented */
#define SNP_HOST_FLAG_KERNEL_HOOKS	(1U << 2)	/* the fault path calls the module */
#define SNP_HOST_FLAG_USER_WP		(1U << 3)	/* user mappings of guest pages are RO */
#define SNP_HOST_FLAG_KVM		(1U << 4)	/* the module serves KVM's RMP ops */

/* snp_host_status.directmap_policy (module parameter directmap=) */
#define SNP_HOST_DIRECTMAP_SPLIT	1	/* split to 4K, stay mapped, no merge (7.3) */
#define SNP_HOST_DIRECTMAP_PERPAGE	2	/* protect each page, flush each, no merge */
#define SNP_HOST_DIRECTMAP_COALESCE	3	/* protect, restore, merge back; batched flushes */
/* The old name of 2, which never unmapped the pages user space maps. */
#define SNP_HOST_DIRECTMAP_UNMAP	SNP_HOST_DIRECTMAP_PERPAGE

/* snp_host_page.level */
#define SNP_HOST_LEVEL_4K		0
#define SNP_HOST_LEVEL_2M		1

struct snp_host_status {
	__u32 backend;		/* SNP_HOST_BACKEND_* */
	__u32 flags;		/* SNP_HOST_FLAG_* */
	__u64 rmp_base;		/* 0 for the emulated backend */
	__u64 rmp_end;		/* 0 for the emulated backend and a segmented RMP */
	__u64 max_pfn;		/* highest PFN the RMP covers */
	__u32 directmap_policy;	/* SNP_HOST_DIRECTMAP_* */
	__u32 reserved;
};

/* One page, addressed by a virtual address in the caller's own memory. */
struct snp_host_page {
	__u64 hva;		/* in */
	__u64 gpa;		/* in for MAKE_PRIVATE, out for LOOKUP */
	__u32 asid;		/* in for MAKE_PRIVATE, out for LOOKUP */
	__u8 level;		/* SNP_HOST_LEVEL_*: in; out for LOOKUP */
	__u8 immutable;		/* in for MAKE_PRIVATE, out for LOOKUP */
	__u8 assigned;		/* out */
	__u8 validated;		/* out (0 where the hardware cannot report it: RMPREAD) */
	__u64 pfn;		/* out: the system PFN behind hva */
	__u64 reserved[2];
};

struct snp_host_stats {
	__u64 private_4k;	/* pages currently assigned at 4K */
	__u64 private_2m;	/* pages currently assigned at 2M */
	__u64 make_private;	/* successful operations ... */
	__u64 make_shared;
	__u64 psmash;
	__u64 transient_retries;	/* RMP busy (OVERLAP/INUSE), retried */
	__u64 failures;
	__u64 leaked_pages;	/* pages kept off the allocator: RMP state unknown */
	__u64 dm_splits_2m;	/* direct-map 2M leaves the module split to 4K */
	__u64 dm_splits_1g;	/* direct-map 1G leaves the module split */
	__u64 dm_merges_2m;	/* direct-map 2M leaves merged back from 4K */
	__u64 dm_merges_1g;	/* direct-map 1G leaves merged back */
	__u64 dm_unmapped_pages;	/* pages out of the direct map now */
	__u64 tlb_flushes;	/* kernel TLB flushes the module issued */
	__u64 dm_cpa_calls;	/* direct-map changes asked of the kernel (CPA calls) */
	__u64 dm_walks;		/* direct-map page-table walks the module made */
};

/*
 * A run of pages of one level, converted in order with one TLB flush per
 * batch.  On error, pages [0, done) were converted and the rest are untouched.
 */
struct snp_host_range {
	__u64 hva;		/* first page, aligned to the level */
	__u64 npages;		/* pages of the given level */
	__u64 gpa;		/* GPA of the first page (to_private) */
	__u32 asid;		/* to_private */
	__u8 level;		/* SNP_HOST_LEVEL_* */
	__u8 to_private;	/* 1 = private, 0 = shared */
	__u8 immutable;		/* to_private */
	__u8 reserved0;
	__u64 done;		/* out: pages converted */
	__u64 reserved[2];
};

/* RMP faults and the refusals around them, as the module decided them. */
struct snp_host_fault_stats {
	__u64 user_faults;	/* RMP faults (hardware or emulated) on user addresses decided */
	__u64 thp_splits;	/* huge user mappings split to resolve one */
	__u64 sigbus;		/* SIGBUS sent (guest page, unsplittable mapping, no progress) */
	__u64 no_progress;	/* of those, for a fault that repeated without progress */
	__u64 uaccess_refused;	/* kernel accesses through a user address refused (EFAULT) */
	__u64 gup_refused;	/* GUP write faults and mprotect upgrades refused */
	__u64 kernel_faults;	/* kernel-mode RMP violations reported (kernel addresses) */
	__u64 reserved[9];
};

/*
 * The kernel's RMP operations (rmp_make_private() and friends, which KVM and
 * the CCP driver call) as the module served them, software-protected VMs
 * included.  Pages are counted in 4K pages; a 2M page counts 512.
 */
struct snp_host_kvm_stats {
	__u64 make_private;	/* rmp_make_private() served (incl. SW-protected VMs) */
	__u64 make_shared;	/* rmp_make_shared() / reclaim served */
	__u64 psmash;		/* psmash() served */
	__u64 lookups;		/* snp_lookup_rmpentry() served */
	__u64 leaked_pages;	/* pages leaked on this path */
	__u64 private_4k_now;	/* 4K pages private through this path now (2M counts 512) */
	__u64 failures;		/* operations that returned an error to the caller */
	__u64 reserved[9];
};

#define SNP_HOST_GET_STATUS	_IOR(SNP_HOST_IOCTL_TYPE, 0x00, struct snp_host_status)
#define SNP_HOST_LOOKUP		_IOWR(SNP_HOST_IOCTL_TYPE, 0x01, struct snp_host_page)
#define SNP_HOST_MAKE_PRIVATE	_IOWR(SNP_HOST_IOCTL_TYPE, 0x02, struct snp_host_page)
#define SNP_HOST_MAKE_SHARED	_IOWR(SNP_HOST_IOCTL_TYPE, 0x03, struct snp_host_page)
/* SNP_HOST_PSMASH: hva 2M-aligned */
#define SNP_HOST_PSMASH		_IOWR(SNP_HOST_IOCTL_TYPE, 0x04, struct snp_host_page)
#define SNP_HOST_CONVERT_RANGE	_IOWR(SNP_HOST_IOCTL_TYPE, 0x05, struct snp_host_range)
#define SNP_HOST_GET_STATS	_IOR(SNP_HOST_IOCTL_TYPE, 0x07, struct snp_host_stats)
#define SNP_HOST_GET_FAULT_STATS	_IOR(SNP_HOST_IOCTL_TYPE, 0x08, struct snp_host_fault_stats)
#define SNP_HOST_GET_KVM_STATS	_IOR(SNP_HOST_IOCTL_TYPE, 0x09, struct snp_host_kvm_stats)

#endif /* _UAPI_LINUX_SNP_HOST_H */
