// SPDX-License-Identifier: GPL-2.0
/*
 * The header check of snp_host/abi.rs: every number of the snp_host ABI, as
 * the C compiler computes it from include/uapi/linux/snp_host.h, written as
 * a Rust assertion about the Rust mirror of that item.
 *
 * Never linked: the build compiles this file to assembly only (the trick of
 * the kernel's asm-offsets), keeps the strings that start with "->" and
 * writes them out as a Rust file, which snp_host/abi.rs includes.  kbuild
 * does it for the module (snp_host/Kbuild) and build.rs for the host crate,
 * so a struct, ioctl number or constant that differs from the header fails
 * both builds, with the assertion that names it.
 *
 * Each struct is checked for size and alignment, each of its fields for
 * offset and width, each ioctl number and constant for its value.  The
 * header's own promise that its structs have no padding (the module copies
 * them to user space whole) is checked here, in C.
 */
#ifdef __KERNEL__
#include <linux/build_bug.h>
#else
#include <assert.h>
#endif

#include "../include/uapi/linux/snp_host.h"

/*
 * Emits "const _: () = assert!(@rust == @val);" into the assembly.  %P0
 * prints the constant bare, without the '$' of an immediate operand (GCC and
 * clang alike; %c0 refuses constants beyond 32 bits in GCC), and the value
 * is widened so that an unsigned ioctl number is not printed negative.  An
 * asm without outputs is volatile: the compiler keeps every one.
 */
#define CHECK(rust, val)						\
	asm("\n.ascii \"->const _: () = assert!(" rust " == %P0);\""	\
	    : : "i" ((unsigned long long)(val)))

/* The width of field @f of @type, as sizeof(((type *)0)->f). */
#define WIDTH(type, f)		sizeof((*(type *)0).f)

/* Rust struct @rs against C struct @type. */
#define CHECK_SIZE(rs, type)						\
	CHECK("core::mem::size_of::<" rs ">()", sizeof(type))
#define CHECK_ALIGN(rs, type)						\
	CHECK("core::mem::align_of::<" rs ">()", __alignof__(type))
#define CHECK_OFFSET(rs, type, f)					\
	CHECK("core::mem::offset_of!(" rs ", " #f ")",			\
	      __builtin_offsetof(type, f))
#define CHECK_WIDTH(rs, type, f)					\
	CHECK("field_size(|s: &" rs "| &s." #f ")", WIDTH(type, f))

/* The fields fill each struct: no padding byte for the kernel to leak. */
static_assert(sizeof(struct snp_host_status) ==
	      WIDTH(struct snp_host_status, backend) +
	      WIDTH(struct snp_host_status, flags) +
	      WIDTH(struct snp_host_status, rmp_base) +
	      WIDTH(struct snp_host_status, rmp_end) +
	      WIDTH(struct snp_host_status, max_pfn) +
	      WIDTH(struct snp_host_status, directmap_policy) +
	      WIDTH(struct snp_host_status, reserved),
	      "struct snp_host_status has padding");
static_assert(sizeof(struct snp_host_page) ==
	      WIDTH(struct snp_host_page, hva) +
	      WIDTH(struct snp_host_page, gpa) +
	      WIDTH(struct snp_host_page, asid) +
	      WIDTH(struct snp_host_page, level) +
	      WIDTH(struct snp_host_page, immutable) +
	      WIDTH(struct snp_host_page, assigned) +
	      WIDTH(struct snp_host_page, validated) +
	      WIDTH(struct snp_host_page, pfn) +
	      WIDTH(struct snp_host_page, reserved),
	      "struct snp_host_page has padding");
static_assert(sizeof(struct snp_host_fault_stats) ==
	      WIDTH(struct snp_host_fault_stats, user_faults) +
	      WIDTH(struct snp_host_fault_stats, thp_splits) +
	      WIDTH(struct snp_host_fault_stats, sigbus) +
	      WIDTH(struct snp_host_fault_stats, no_progress) +
	      WIDTH(struct snp_host_fault_stats, uaccess_refused) +
	      WIDTH(struct snp_host_fault_stats, gup_refused) +
	      WIDTH(struct snp_host_fault_stats, kernel_faults) +
	      WIDTH(struct snp_host_fault_stats, reserved),
	      "struct snp_host_fault_stats has padding");
static_assert(sizeof(struct snp_host_stats) ==
	      WIDTH(struct snp_host_stats, private_4k) +
	      WIDTH(struct snp_host_stats, private_2m) +
	      WIDTH(struct snp_host_stats, make_private) +
	      WIDTH(struct snp_host_stats, make_shared) +
	      WIDTH(struct snp_host_stats, psmash) +
	      WIDTH(struct snp_host_stats, transient_retries) +
	      WIDTH(struct snp_host_stats, failures) +
	      WIDTH(struct snp_host_stats, leaked_pages) +
	      WIDTH(struct snp_host_stats, dm_splits_2m) +
	      WIDTH(struct snp_host_stats, dm_splits_1g) +
	      WIDTH(struct snp_host_stats, dm_merges_2m) +
	      WIDTH(struct snp_host_stats, dm_merges_1g) +
	      WIDTH(struct snp_host_stats, dm_unmapped_pages) +
	      WIDTH(struct snp_host_stats, tlb_flushes) +
	      WIDTH(struct snp_host_stats, dm_cpa_calls) +
	      WIDTH(struct snp_host_stats, dm_walks),
	      "struct snp_host_stats has padding");
static_assert(sizeof(struct snp_host_kvm_stats) ==
	      WIDTH(struct snp_host_kvm_stats, make_private) +
	      WIDTH(struct snp_host_kvm_stats, make_shared) +
	      WIDTH(struct snp_host_kvm_stats, psmash) +
	      WIDTH(struct snp_host_kvm_stats, lookups) +
	      WIDTH(struct snp_host_kvm_stats, leaked_pages) +
	      WIDTH(struct snp_host_kvm_stats, private_4k_now) +
	      WIDTH(struct snp_host_kvm_stats, failures) +
	      WIDTH(struct snp_host_kvm_stats, reserved),
	      "struct snp_host_kvm_stats has padding");
static_assert(sizeof(struct snp_host_range) ==
	      WIDTH(struct snp_host_range, hva) +
	      WIDTH(struct snp_host_range, npages) +
	      WIDTH(struct snp_host_range, gpa) +
	      WIDTH(struct snp_host_range, asid) +
	      WIDTH(struct snp_host_range, level) +
	      WIDTH(struct snp_host_range, to_private) +
	      WIDTH(struct snp_host_range, immutable) +
	      WIDTH(struct snp_host_range, reserved0) +
	      WIDTH(struct snp_host_range, done) +
	      WIDTH(struct snp_host_range, reserved),
	      "struct snp_host_range has padding");

int main(void)
{
	CHECK_SIZE("Status", struct snp_host_status);
	CHECK_ALIGN("Status", struct snp_host_status);
	CHECK_OFFSET("Status", struct snp_host_status, backend);
	CHECK_WIDTH("Status", struct snp_host_status, backend);
	CHECK_OFFSET("Status", struct snp_host_status, flags);
	CHECK_WIDTH("Status", struct snp_host_status, flags);
	CHECK_OFFSET("Status", struct snp_host_status, rmp_base);
	CHECK_WIDTH("Status", struct snp_host_status, rmp_base);
	CHECK_OFFSET("Status", struct snp_host_status, rmp_end);
	CHECK_WIDTH("Status", struct snp_host_status, rmp_end);
	CHECK_OFFSET("Status", struct snp_host_status, max_pfn);
	CHECK_WIDTH("Status", struct snp_host_status, max_pfn);
	CHECK_OFFSET("Status", struct snp_host_status, directmap_policy);
	CHECK_WIDTH("Status", struct snp_host_status, directmap_policy);
	CHECK_OFFSET("Status", struct snp_host_status, reserved);
	CHECK_WIDTH("Status", struct snp_host_status, reserved);

	CHECK_SIZE("Page", struct snp_host_page);
	CHECK_ALIGN("Page", struct snp_host_page);
	CHECK_OFFSET("Page", struct snp_host_page, hva);
	CHECK_WIDTH("Page", struct snp_host_page, hva);
	CHECK_OFFSET("Page", struct snp_host_page, gpa);
	CHECK_WIDTH("Page", struct snp_host_page, gpa);
	CHECK_OFFSET("Page", struct snp_host_page, asid);
	CHECK_WIDTH("Page", struct snp_host_page, asid);
	CHECK_OFFSET("Page", struct snp_host_page, level);
	CHECK_WIDTH("Page", struct snp_host_page, level);
	CHECK_OFFSET("Page", struct snp_host_page, immutable);
	CHECK_WIDTH("Page", struct snp_host_page, immutable);
	CHECK_OFFSET("Page", struct snp_host_page, assigned);
	CHECK_WIDTH("Page", struct snp_host_page, assigned);
	CHECK_OFFSET("Page", struct snp_host_page, validated);
	CHECK_WIDTH("Page", struct snp_host_page, validated);
	CHECK_OFFSET("Page", struct snp_host_page, pfn);
	CHECK_WIDTH("Page", struct snp_host_page, pfn);
	CHECK_OFFSET("Page", struct snp_host_page, reserved);
	CHECK_WIDTH("Page", struct snp_host_page, reserved);

	CHECK_SIZE("Stats", struct snp_host_stats);
	CHECK_ALIGN("Stats", struct snp_host_stats);
	CHECK_OFFSET("Stats", struct snp_host_stats, private_4k);
	CHECK_WIDTH("Stats", struct snp_host_stats, private_4k);
	CHECK_OFFSET("Stats", struct snp_host_stats, private_2m);
	CHECK_WIDTH("Stats", struct snp_host_stats, private_2m);
	CHECK_OFFSET("Stats", struct snp_host_stats, make_private);
	CHECK_WIDTH("Stats", struct snp_host_stats, make_private);
	CHECK_OFFSET("Stats", struct snp_host_stats, make_shared);
	CHECK_WIDTH("Stats", struct snp_host_stats, make_shared);
	CHECK_OFFSET("Stats", struct snp_host_stats, psmash);
	CHECK_WIDTH("Stats", struct snp_host_stats, psmash);
	CHECK_OFFSET("Stats", struct snp_host_stats, transient_retries);
	CHECK_WIDTH("Stats", struct snp_host_stats, transient_retries);
	CHECK_OFFSET("Stats", struct snp_host_stats, failures);
	CHECK_WIDTH("Stats", struct snp_host_stats, failures);
	CHECK_OFFSET("Stats", struct snp_host_stats, leaked_pages);
	CHECK_WIDTH("Stats", struct snp_host_stats, leaked_pages);
	CHECK_OFFSET("Stats", struct snp_host_stats, dm_splits_2m);
	CHECK_WIDTH("Stats", struct snp_host_stats, dm_splits_2m);
	CHECK_OFFSET("Stats", struct snp_host_stats, dm_splits_1g);
	CHECK_WIDTH("Stats", struct snp_host_stats, dm_splits_1g);
	CHECK_OFFSET("Stats", struct snp_host_stats, dm_merges_2m);
	CHECK_WIDTH("Stats", struct snp_host_stats, dm_merges_2m);
	CHECK_OFFSET("Stats", struct snp_host_stats, dm_merges_1g);
	CHECK_WIDTH("Stats", struct snp_host_stats, dm_merges_1g);
	CHECK_OFFSET("Stats", struct snp_host_stats, dm_unmapped_pages);
	CHECK_WIDTH("Stats", struct snp_host_stats, dm_unmapped_pages);
	CHECK_OFFSET("Stats", struct snp_host_stats, tlb_flushes);
	CHECK_WIDTH("Stats", struct snp_host_stats, tlb_flushes);
	CHECK_OFFSET("Stats", struct snp_host_stats, dm_cpa_calls);
	CHECK_WIDTH("Stats", struct snp_host_stats, dm_cpa_calls);
	CHECK_OFFSET("Stats", struct snp_host_stats, dm_walks);
	CHECK_WIDTH("Stats", struct snp_host_stats, dm_walks);

	CHECK_SIZE("FaultStats", struct snp_host_fault_stats);
	CHECK_ALIGN("FaultStats", struct snp_host_fault_stats);
	CHECK_OFFSET("FaultStats", struct snp_host_fault_stats, user_faults);
	CHECK_WIDTH("FaultStats", struct snp_host_fault_stats, user_faults);
	CHECK_OFFSET("FaultStats", struct snp_host_fault_stats, thp_splits);
	CHECK_WIDTH("FaultStats", struct snp_host_fault_stats, thp_splits);
	CHECK_OFFSET("FaultStats", struct snp_host_fault_stats, sigbus);
	CHECK_WIDTH("FaultStats", struct snp_host_fault_stats, sigbus);
	CHECK_OFFSET("FaultStats", struct snp_host_fault_stats, no_progress);
	CHECK_WIDTH("FaultStats", struct snp_host_fault_stats, no_progress);
	CHECK_OFFSET("FaultStats", struct snp_host_fault_stats, uaccess_refused);
	CHECK_WIDTH("FaultStats", struct snp_host_fault_stats, uaccess_refused);
	CHECK_OFFSET("FaultStats", struct snp_host_fault_stats, gup_refused);
	CHECK_WIDTH("FaultStats", struct snp_host_fault_stats, gup_refused);
	CHECK_OFFSET("FaultStats", struct snp_host_fault_stats, kernel_faults);
	CHECK_WIDTH("FaultStats", struct snp_host_fault_stats, kernel_faults);
	CHECK_OFFSET("FaultStats", struct snp_host_fault_stats, reserved);
	CHECK_WIDTH("FaultStats", struct snp_host_fault_stats, reserved);

	CHECK_SIZE("KvmStats", struct snp_host_kvm_stats);
	CHECK_ALIGN("KvmStats", struct snp_host_kvm_stats);
	CHECK_OFFSET("KvmStats", struct snp_host_kvm_stats, make_private);
	CHECK_WIDTH("KvmStats", struct snp_host_kvm_stats, make_private);
	CHECK_OFFSET("KvmStats", struct snp_host_kvm_stats, make_shared);
	CHECK_WIDTH("KvmStats", struct snp_host_kvm_stats, make_shared);
	CHECK_OFFSET("KvmStats", struct snp_host_kvm_stats, psmash);
	CHECK_WIDTH("KvmStats", struct snp_host_kvm_stats, psmash);
	CHECK_OFFSET("KvmStats", struct snp_host_kvm_stats, lookups);
	CHECK_WIDTH("KvmStats", struct snp_host_kvm_stats, lookups);
	CHECK_OFFSET("KvmStats", struct snp_host_kvm_stats, leaked_pages);
	CHECK_WIDTH("KvmStats", struct snp_host_kvm_stats, leaked_pages);
	CHECK_OFFSET("KvmStats", struct snp_host_kvm_stats, private_4k_now);
	CHECK_WIDTH("KvmStats", struct snp_host_kvm_stats, private_4k_now);
	CHECK_OFFSET("KvmStats", struct snp_host_kvm_stats, failures);
	CHECK_WIDTH("KvmStats", struct snp_host_kvm_stats, failures);
	CHECK_OFFSET("KvmStats", struct snp_host_kvm_stats, reserved);
	CHECK_WIDTH("KvmStats", struct snp_host_kvm_stats, reserved);

	CHECK_SIZE("Range", struct snp_host_range);
	CHECK_ALIGN("Range", struct snp_host_range);
	CHECK_OFFSET("Range", struct snp_host_range, hva);
	CHECK_WIDTH("Range", struct snp_host_range, hva);
	CHECK_OFFSET("Range", struct snp_host_range, npages);
	CHECK_WIDTH("Range", struct snp_host_range, npages);
	CHECK_OFFSET("Range", struct snp_host_range, gpa);
	CHECK_WIDTH("Range", struct snp_host_range, gpa);
	CHECK_OFFSET("Range", struct snp_host_range, asid);
	CHECK_WIDTH("Range", struct snp_host_range, asid);
	CHECK_OFFSET("Range", struct snp_host_range, level);
	CHECK_WIDTH("Range", struct snp_host_range, level);
	CHECK_OFFSET("Range", struct snp_host_range, to_private);
	CHECK_WIDTH("Range", struct snp_host_range, to_private);
	CHECK_OFFSET("Range", struct snp_host_range, immutable);
	CHECK_WIDTH("Range", struct snp_host_range, immutable);
	CHECK_OFFSET("Range", struct snp_host_range, reserved0);
	CHECK_WIDTH("Range", struct snp_host_range, reserved0);
	CHECK_OFFSET("Range", struct snp_host_range, done);
	CHECK_WIDTH("Range", struct snp_host_range, done);
	CHECK_OFFSET("Range", struct snp_host_range, reserved);
	CHECK_WIDTH("Range", struct snp_host_range, reserved);

	CHECK("TYPE", SNP_HOST_IOCTL_TYPE);
	CHECK("GET_STATUS", SNP_HOST_GET_STATUS);
	CHECK("LOOKUP", SNP_HOST_LOOKUP);
	CHECK("MAKE_PRIVATE", SNP_HOST_MAKE_PRIVATE);
	CHECK("MAKE_SHARED", SNP_HOST_MAKE_SHARED);
	CHECK("PSMASH", SNP_HOST_PSMASH);
	CHECK("CONVERT_RANGE", SNP_HOST_CONVERT_RANGE);
	CHECK("GET_STATS", SNP_HOST_GET_STATS);
	CHECK("GET_FAULT_STATS", SNP_HOST_GET_FAULT_STATS);
	CHECK("GET_KVM_STATS", SNP_HOST_GET_KVM_STATS);

	CHECK("BACKEND_HARDWARE", SNP_HOST_BACKEND_HARDWARE);
	CHECK("BACKEND_EMULATED", SNP_HOST_BACKEND_EMULATED);
	CHECK("FLAG_RMPREAD", SNP_HOST_FLAG_RMPREAD);
	CHECK("FLAG_SEGMENTED_RMP", SNP_HOST_FLAG_SEGMENTED_RMP);
	CHECK("FLAG_KERNEL_HOOKS", SNP_HOST_FLAG_KERNEL_HOOKS);
	CHECK("FLAG_USER_WP", SNP_HOST_FLAG_USER_WP);
	CHECK("FLAG_KVM", SNP_HOST_FLAG_KVM);
	CHECK("LEVEL_4K", SNP_HOST_LEVEL_4K);
	CHECK("LEVEL_2M", SNP_HOST_LEVEL_2M);
	/* The policy numbers come from the direct-map model itself. */
	CHECK("crate::directmap::model::Policy::Split.abi()",
	      SNP_HOST_DIRECTMAP_SPLIT);
	CHECK("crate::directmap::model::Policy::PerPage.abi()",
	      SNP_HOST_DIRECTMAP_PERPAGE);
	CHECK("crate::directmap::model::Policy::PerPage.abi()",
	      SNP_HOST_DIRECTMAP_UNMAP);
	CHECK("crate::directmap::model::Policy::Coalesce.abi()",
	      SNP_HOST_DIRECTMAP_COALESCE);
	return 0;
}
