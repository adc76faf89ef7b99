// SPDX-License-Identifier: GPL-2.0
/*
 * snp_host user-interface selftests: /dev/snp_host and its debugfs views.
 *
 * Every answer of the module is checked against an interface it does not
 * control: the PFN it reports against /proc/self/pagemap, THP state against
 * /proc/self/smaps and /proc/kpageflags, pinning against /proc/vmstat and
 * fork's copy-on-write, and its RMP state against the debugfs rmp and lookup
 * files.  Counters are module-wide, so tests compare deltas; every refused
 * call is shown to have changed nothing (LOOKUP, GET_STATS and the debugfs
 * rmp dump are identical before and after).
 *
 * The tests never write to a page while it is private (nor to a THP while
 * any of its pages is): on SNP hardware such a write takes an RMP fault.
 * Runs as root; tests that depend on THP, hugetlbfs pages, debugfs or one
 * backend skip (KSFT_SKIP) when that is missing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <linux/capability.h>
#ifdef __x86_64__
#include <cpuid.h>
#endif

#include "kselftest_harness.h"
#include "snp_host_check.h"

#define MISC_MAJOR		10
#define NOBODY			65534
#define HUGETLB_2M_DIR		"/sys/kernel/mm/hugepages/hugepages-2048kB"
#define KERNEL_ADDR		((void *)0xffffffff81000000UL)

FIXTURE(snp)
{
	struct env env;
	struct snp_host_status status;
};

FIXTURE_SETUP(snp)
{
	self->env.fd = -1;
	if (geteuid())
		SKIP(return, "needs root (pagemap PFNs, kpageflags, the device)");
	if (access(SNP_MODULE_DIR, F_OK))
		SKIP(return, "snp_host.ko is not loaded");
	self->env.fd = snp_open();
	ASSERT_LE(0, self->env.fd) TH_LOG("open %s: %s", SNP_DEV, strerror(-self->env.fd));
	ASSERT_EQ(0, snp_get_status(self->env.fd, &self->status));
	/* debugfs_views fails if debugfs is mounted without our directory. */
	self->env.debugfs = debugfs_mounted() && !access(SNP_DEBUGFS, F_OK);
}

FIXTURE_TEARDOWN(snp)
{
	if (self->env.fd >= 0)
		close(self->env.fd);
}

static const char *thp_why(int ret)
{
	return ret == -ENOTSUP ? "THP is disabled ([never])" :
				 "the kernel did not give a PMD-mapped THP";
}

/* MAKE_PRIVATE of @p through @fd must fail with @err and change nothing. */
static void refuse_private(struct __test_metadata *_metadata,
			   const struct env *env, int fd,
			   struct snp_host_page p, int err, void *const *hvas,
			   int n, const char *what)
{
	expect_refused(_metadata, env, fd, SNP_HOST_MAKE_PRIVATE, &p, err, 0,
		       hvas, n, what);
}

/*
 * Makes @n pages from @p private at 4K (page i at @gpa + i * 4K) or, when
 * @asid is 0, shared, through @fd.  Returns 0, or the first error with the
 * index of its page in @at.
 */
static int convert_range(int fd, char *p, int n, __u64 gpa, __u32 asid,
			 int *at)
{
	int ret = 0;

	for (*at = 0; *at < n; ++*at) {
		if (asid)
			ret = snp_make_private(fd, p + *at * SZ_4K,
					       gpa + *at * SZ_4K, asid, 0);
		else
			ret = snp_make_shared(fd, p + *at * SZ_4K, 0);
		if (ret)
			break;
	}
	return ret;
}

TEST(device_node)
{
	struct stat st;

	if (access(SNP_MODULE_DIR, F_OK))
		SKIP(return, "snp_host.ko is not loaded");
	ASSERT_EQ(0, stat(SNP_DEV, &st)) TH_LOG("%s: %s", SNP_DEV, strerror(errno));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(MISC_MAJOR, (int)major(st.st_rdev)) TH_LOG("not a misc device");
	EXPECT_EQ(0600U, st.st_mode & 07777U);
	EXPECT_EQ(0U, st.st_uid);
}

/* The highest PFN of "System RAM" in /proc/iomem (root sees addresses), 0 if unknown. */
static __u64 iomem_top_pfn(void)
{
	unsigned long long start, end;
	char line[256], name[64];
	__u64 top = 0;
	FILE *f;

	f = fopen("/proc/iomem", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == ' ')
			continue;
		if (sscanf(line, "%llx-%llx : %63[^\n]", &start, &end, name) != 3)
			continue;
		if (!strcmp(name, "System RAM") && end >> 12 > top)
			top = end >> 12;
	}
	fclose(f);
	return top;
}

/* CPUID 0x8000001F EAX, 0 where the leaf does not exist (TCG). */
static unsigned int sev_cpuid_eax(void)
{
#ifdef __x86_64__
	unsigned int eax, ebx, ecx, edx;

	if (__get_cpuid(0x8000001f, &eax, &ebx, &ecx, &edx))
		return eax;
#endif
	return 0;
}

TEST_F(snp, status)
{
	const struct env *env = &self->env;
	const struct snp_host_status *s = &self->status;
	const __u32 known = SNP_HOST_FLAG_RMPREAD |
			    SNP_HOST_FLAG_SEGMENTED_RMP |
			    SNP_HOST_FLAG_KERNEL_HOOKS |
			    SNP_HOST_FLAG_USER_WP |
			    SNP_HOST_FLAG_KVM;
	unsigned int cpuid = sev_cpuid_eax();
	struct snp_host_status again;
	__u64 pfns[256], top;
	long long mem_kb;
	char *policy;
	char *pages;
	int i;

	EXPECT_TRUE(s->backend == SNP_HOST_BACKEND_HARDWARE ||
		    s->backend == SNP_HOST_BACKEND_EMULATED)
		TH_LOG("backend %u", s->backend);
	if (!cpu_has_flag("sev_snp"))
		EXPECT_EQ((__u32)SNP_HOST_BACKEND_EMULATED, s->backend)
			TH_LOG("no sev_snp in /proc/cpuinfo, yet backend %u", s->backend);
	EXPECT_EQ(0U, s->flags & ~known) TH_LOG("flags 0x%x", s->flags);
	if (s->flags & SNP_HOST_FLAG_RMPREAD)
		EXPECT_TRUE(!!(cpuid & (1U << 21))) TH_LOG("RMPREAD claimed, CPUID lacks it");
	if (s->flags & SNP_HOST_FLAG_SEGMENTED_RMP)
		EXPECT_TRUE(!!(cpuid & (1U << 23))) TH_LOG("segmented RMP claimed, CPUID lacks it");
	/* The policy is the one the directmap= parameter in sysfs names. */
	policy = read_text(SNP_MODULE_DIR "/parameters/directmap");
	ASSERT_NE(NULL, policy);
	if (!strcmp(policy, "split\n")) {
		EXPECT_EQ((__u32)SNP_HOST_DIRECTMAP_SPLIT, s->directmap_policy);
	} else if (!strcmp(policy, "perpage\n")) {
		EXPECT_EQ((__u32)SNP_HOST_DIRECTMAP_PERPAGE, s->directmap_policy);
	} else {
		EXPECT_EQ((__u32)SNP_HOST_DIRECTMAP_COALESCE, s->directmap_policy)
			TH_LOG("directmap=%s", policy);
	}
	free(policy);
	EXPECT_EQ(0U, s->reserved);

	ASSERT_EQ(0, snp_get_status(env->fd, &again));
	EXPECT_EQ(0, memcmp(s, &again, sizeof(again)));

	/* The RMP covers all of RAM: any page we get, and the top of RAM. */
	EXPECT_NE(0ULL, s->max_pfn);
	pages = map_pages(256);
	ASSERT_NE(NULL, pages);
	ASSERT_EQ(0, pagemap_pfns(pages, 256, pfns));
	for (i = 0; i < 256; i++) {
		ASSERT_NE(0ULL, pfns[i]);
		EXPECT_LE(pfns[i], s->max_pfn);
	}
	mem_kb = meminfo_read("MemTotal");
	ASSERT_LT(0LL, mem_kb);
	EXPECT_LE((unsigned long long)mem_kb, (s->max_pfn + 1) * 4);
	top = iomem_top_pfn();
	if (top)
		EXPECT_LE(top, s->max_pfn);
}

TEST_F(snp, status_emulated)
{
	const struct snp_host_status *s = &self->status;

	if (s->backend != SNP_HOST_BACKEND_EMULATED)
		SKIP(return, "emulated backend only");
	EXPECT_EQ(0ULL, s->rmp_base);
	EXPECT_EQ(0ULL, s->rmp_end);
}

TEST_F(snp, status_hardware)
{
	const struct snp_host_status *s = &self->status;
	unsigned int cpuid = sev_cpuid_eax();

	if (s->backend != SNP_HOST_BACKEND_HARDWARE)
		SKIP(return, "hardware backend only");
	EXPECT_TRUE(cpu_has_flag("sev_snp"));
	EXPECT_TRUE(!!(cpuid & (1U << 4))) TH_LOG("CPUID says no SEV-SNP");
	EXPECT_EQ(!!(cpuid & (1U << 21)), !!(s->flags & SNP_HOST_FLAG_RMPREAD));
	EXPECT_NE(0ULL, s->rmp_base);
	if (s->flags & SNP_HOST_FLAG_SEGMENTED_RMP) {
		/* The ABI reports no end for a segmented RMP. */
		EXPECT_EQ(0ULL, s->rmp_end);
	} else {
		EXPECT_LT(s->rmp_base, s->rmp_end);
		/* A contiguous RMP: 16K of bookkeeping, then 16 bytes per PFN. */
		EXPECT_LE(0x4000 + (s->max_pfn + 1) * 16,
			  s->rmp_end - s->rmp_base + 1);
	}
}

TEST_F(snp, roundtrip_4k)
{
	const struct env *env = &self->env;
	const __u64 gpa = 0x10000000ULL;
	const __u32 asid = 1;
	int i, bad = 0, budget = LOG_BUDGET;
	struct snp_host_stats st0, st1, st2;
	__u64 before[4], pfn[4];
	struct want w;
	char *p;

	/* Written, read-only (zero page), untouched, written. */
	p = mmap(NULL, 4 * SZ_4K, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	madvise(p, 4 * SZ_4K, MADV_NOHUGEPAGE);
	p[0] = 1;
	ASSERT_EQ(0, madvise(p + SZ_4K, SZ_4K, MADV_POPULATE_READ));
	p[3 * SZ_4K] = 3;
	ASSERT_EQ(0, pagemap_pfns(p, 4, before));
	ASSERT_NE(0ULL, before[0]);
	ASSERT_NE(0ULL, before[1]);
	ASSERT_EQ(0ULL, before[2]);
	for (i = 0; i < 4; i++)
		if (i != 2)
			bad += lookup_bad(_metadata, env->fd, p + i * SZ_4K,
					  &unassigned, &budget);
	EXPECT_EQ(0, bad);

	read_stats(_metadata, env->fd, &st0);
	ASSERT_EQ(0, convert_range(env->fd, p, 4, gpa, asid, &i))
		TH_LOG("page %d", i);
	read_stats(_metadata, env->fd, &st1);
	expect_delta(_metadata, &st0, &st1, 4, 0, 4, 0, 0);

	/* Each hva now has its own exclusive anonymous page, never the zero page. */
	ASSERT_EQ(0, pagemap_pfns(p, 4, pfn));
	for (i = 0; i < 4; i++) {
		ASSERT_NE(0ULL, pfn[i]) TH_LOG("page %d not present", i);
		EXPECT_TRUE(kpf_has(pfn[i], KPF_ANON)) TH_LOG("page %d", i);
		EXPECT_FALSE(kpf_has(pfn[i], KPF_ZERO_PAGE)) TH_LOG("page %d", i);
		if (i)
			EXPECT_NE(pfn[i - 1], pfn[i]);
	}
	w = (struct want){ .assigned = 1, .asid = asid, .gpa = gpa };
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, p, 4, &w, SZ_4K));
	expect_rmp(_metadata, env, pfn, 4, &w, SZ_4K);
	for (i = 0; i < 4; i++) {
		w.gpa = gpa + i * SZ_4K;
		expect_dbg_lookup(_metadata, env, pfn[i], &w, i & 1);
	}

	ASSERT_EQ(0, convert_range(env->fd, p, 4, 0, 0, &i))
		TH_LOG("page %d", i);
	read_stats(_metadata, env->fd, &st2);
	expect_delta(_metadata, &st1, &st2, -4, 0, 0, 4, 0);
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, p, 4, &unassigned, 0));
	expect_rmp(_metadata, env, pfn, 4, &unassigned, 0);
	expect_dbg_lookup(_metadata, env, pfn[0], &unassigned, true);

	/* Shared again, the host may write them (on hardware: no RMP fault). */
	memset(p, 0x5a, 4 * SZ_4K);
	EXPECT_EQ(0x5a, p[4 * SZ_4K - 1]);
	munmap(p, 4 * SZ_4K);
}

TEST_F(snp, roundtrip_2m)
{
	const struct env *env = &self->env;
	const __u64 gpa = 0x40000000ULL;
	const struct want w = { .assigned = 1, .level = 1, .asid = 2, .gpa = gpa };
	struct snp_host_stats st0, st1, st2;
	struct snp_host_page sub;
	struct thp thp;
	void *probe[2];
	int ret;

	ret = thp_alloc(&thp);
	if (ret)
		SKIP(return, "%s", thp_why(ret));
	probe[0] = thp.base;
	probe[1] = thp.base + 7 * SZ_4K;

	read_stats(_metadata, env->fd, &st0);
	ASSERT_EQ(0, snp_make_private(env->fd, thp.base, gpa, w.asid,
				      SNP_HOST_LEVEL_2M));
	read_stats(_metadata, env->fd, &st1);
	expect_delta(_metadata, &st0, &st1, 0, 1, 1, 0, 0);
	EXPECT_TRUE(thp_intact(&thp)) TH_LOG("no longer a PMD-mapped THP");

	/* Every 4K subpage reports the one 2M entry, gpa = the 2M base. */
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, thp.base,
				      PAGES_PER_2M, &w, 0));
	expect_rmp(_metadata, env, &thp.pfn, 1, &w, 0);
	expect_dbg_lookup(_metadata, env, thp.pfn, &w, true);

	sub = snp_page(probe[1], 0x7000, w.asid, SNP_HOST_LEVEL_4K);
	refuse_private(_metadata, env, env->fd, sub, EBUSY, probe, 2,
		       "4K MAKE_PRIVATE inside a 2M assignment");
	refuse_private(_metadata, env, env->fd,
		       snp_page(thp.base, gpa, w.asid, SNP_HOST_LEVEL_2M),
		       EBUSY, probe, 2, "second 2M MAKE_PRIVATE");
	sub = snp_page(probe[0], 0, 0, SNP_HOST_LEVEL_4K);
	expect_refused(_metadata, env, env->fd, SNP_HOST_MAKE_SHARED, &sub,
		       ENOENT, EINVAL, probe, 2,
		       "4K MAKE_SHARED of a 2M assignment");

	ASSERT_EQ(0, snp_make_shared(env->fd, thp.base, SNP_HOST_LEVEL_2M));
	read_stats(_metadata, env->fd, &st2);
	expect_delta(_metadata, &st1, &st2, 0, -1, 0, 1, 0);
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, thp.base,
				      PAGES_PER_2M, &unassigned, 0));
	expect_rmp(_metadata, env, &thp.pfn, 1, &unassigned, 0);
	EXPECT_TRUE(thp_intact(&thp));
	memset(thp.base, 0x5a, SZ_2M);
	thp_free(&thp);
}

TEST_F(snp, thp_4k_inside)
{
	const struct env *env = &self->env;
	const struct want w = { .assigned = 1, .asid = 3, .gpa = 0x50005000ULL };
	struct snp_host_stats st0, st1, st2;
	int i, bad = 0, budget = LOG_BUDGET;
	struct thp thp;
	void *probe[2];
	char *sub;
	int ret;

	ret = thp_alloc(&thp);
	if (ret)
		SKIP(return, "%s", thp_why(ret));
	sub = thp.base + 5 * SZ_4K;
	probe[0] = thp.base;
	probe[1] = sub;

	read_stats(_metadata, env->fd, &st0);
	ASSERT_EQ(0, snp_make_private(env->fd, sub, w.gpa, w.asid,
				      SNP_HOST_LEVEL_4K));
	read_stats(_metadata, env->fd, &st1);
	expect_delta(_metadata, &st0, &st1, 1, 0, 1, 0, 0);

	/* The folio stays whole and PMD-mapped; only that 4K page is private. */
	EXPECT_TRUE(thp_intact(&thp)) TH_LOG("the THP was split or remapped");
	for (i = 0; i < PAGES_PER_2M; i++)
		bad += lookup_bad(_metadata, env->fd, thp.base + i * SZ_4K,
				  i == 5 ? &w : &unassigned, &budget);
	EXPECT_EQ(0, bad);
	expect_rmp_range(_metadata, env, thp.pfn + 5, 1, &w, 0);
	expect_rmp_range(_metadata, env, thp.pfn, 5, &unassigned, 0);
	expect_dbg_lookup(_metadata, env, thp.pfn + 5, &w, false);

	/* A 2M assignment would overlap the assigned 4K page. */
	refuse_private(_metadata, env, env->fd,
		       snp_page(thp.base, 0x60000000ULL, w.asid,
				SNP_HOST_LEVEL_2M),
		       EBUSY, probe, 2, "2M MAKE_PRIVATE over an assigned 4K page");

	ASSERT_EQ(0, snp_make_shared(env->fd, sub, SNP_HOST_LEVEL_4K));
	read_stats(_metadata, env->fd, &st2);
	expect_delta(_metadata, &st1, &st2, -1, 0, 0, 1, 0);
	EXPECT_TRUE(thp_intact(&thp));
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, thp.base,
				      PAGES_PER_2M, &unassigned, 0));

	/* Whole again, the same THP can be assigned at 2M. */
	ASSERT_EQ(0, snp_make_private(env->fd, thp.base, 0x60000000ULL,
				      w.asid, SNP_HOST_LEVEL_2M));
	ASSERT_EQ(0, snp_make_shared(env->fd, thp.base, SNP_HOST_LEVEL_2M));
	thp_free(&thp);
}

TEST_F(snp, psmash_splits_2m)
{
	const struct env *env = &self->env;
	const struct want w2m = { .assigned = 1, .level = 1, .asid = 4,
				  .gpa = 0x80000000ULL };
	const struct want w4k = { .assigned = 1, .asid = 4, .gpa = w2m.gpa };
	struct snp_host_stats st0, st1, st2;
	struct snp_host_page pg;
	int i, failed = 0;
	struct thp thp;
	void *probe[2];
	int ret;

	ret = thp_alloc(&thp);
	if (ret)
		SKIP(return, "%s", thp_why(ret));
	probe[0] = thp.base;
	probe[1] = thp.base + (PAGES_PER_2M - 1) * SZ_4K;

	ASSERT_EQ(0, snp_make_private(env->fd, thp.base, w2m.gpa, w2m.asid,
				      SNP_HOST_LEVEL_2M));
	read_stats(_metadata, env->fd, &st0);
	ASSERT_EQ(0, snp_psmash(env->fd, thp.base));
	read_stats(_metadata, env->fd, &st1);
	expect_delta(_metadata, &st0, &st1, PAGES_PER_2M, -1, 0, 0, 1);

	/* 512 4K entries with the 2M entry's attributes, gpa base + i * 4K. */
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, thp.base,
				      PAGES_PER_2M, &w4k, SZ_4K));
	expect_rmp_range(_metadata, env, thp.pfn, PAGES_PER_2M, &w4k, SZ_4K);
	expect_dbg_lookup(_metadata, env, thp.pfn, &w4k, true);
	/* PSMASH splits the RMP entry, not the folio or its mapping. */
	EXPECT_TRUE(thp_intact(&thp));

	/* The 2M assignment is gone. */
	pg = snp_page(thp.base, 0, 0, SNP_HOST_LEVEL_2M);
	expect_refused(_metadata, env, env->fd, SNP_HOST_MAKE_SHARED, &pg,
		       ENOENT, 0, probe, 2, "2M MAKE_SHARED after PSMASH");
	pg = snp_page(thp.base, 0, 0, SNP_HOST_LEVEL_2M);
	expect_refused(_metadata, env, env->fd, SNP_HOST_PSMASH, &pg,
		       ENOENT, EINVAL, probe, 2, "second PSMASH");

	for (i = 0; i < PAGES_PER_2M; i++)
		failed += !!snp_make_shared(env->fd, thp.base + i * SZ_4K,
					    SNP_HOST_LEVEL_4K);
	EXPECT_EQ(0, failed);
	read_stats(_metadata, env->fd, &st2);
	expect_delta(_metadata, &st1, &st2, -PAGES_PER_2M, 0, 0, PAGES_PER_2M, 0);
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, thp.base,
				      PAGES_PER_2M, &unassigned, 0));
	expect_rmp_range(_metadata, env, thp.pfn, PAGES_PER_2M, &unassigned, 0);
	EXPECT_TRUE(thp_intact(&thp));
	memset(thp.base, 0x5a, SZ_2M);
	thp_free(&thp);
}

TEST_F(snp, einval_alignment)
{
	const struct env *env = &self->env;
	struct snp_host_page pg;
	struct thp thp;
	void *probe[2];
	char *p;

	p = map_anon(SZ_2M, SZ_2M, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, p);
	probe[0] = p;
	probe[1] = p + SZ_4K;
	refuse_private(_metadata, env, env->fd, snp_page(p + 1, 0x1000, 1, 0),
		       EINVAL, probe, 2, "hva + 1");
	refuse_private(_metadata, env, env->fd,
		       snp_page(p + 0x800, 0x1000, 1, 0), EINVAL, probe, 2,
		       "hva + 2K");
	refuse_private(_metadata, env, env->fd,
		       snp_page(p + SZ_4K - 1, 0x1000, 1, 0), EINVAL, probe, 2,
		       "hva + 4K - 1");
	refuse_private(_metadata, env, env->fd,
		       snp_page(p + SZ_4K, 0x200000, 1, SNP_HOST_LEVEL_2M),
		       EINVAL, probe, 2, "2M at a 4K-aligned hva");
	pg = snp_page(p + SZ_4K, 0, 0, SNP_HOST_LEVEL_2M);
	expect_refused(_metadata, env, env->fd, SNP_HOST_PSMASH, &pg, EINVAL,
		       0, probe, 2, "PSMASH at a 4K-aligned hva");

	/* MAKE_SHARED of an assigned page at a misaligned hva. */
	ASSERT_EQ(0, snp_make_private(env->fd, p, 0x1000, 1, 0));
	pg = snp_page(p + 1, 0, 0, 0);
	expect_refused(_metadata, env, env->fd, SNP_HOST_MAKE_SHARED, &pg,
		       EINVAL, 0, probe, 2, "MAKE_SHARED at hva + 1");
	pg = snp_page(p + 0x800, 0, 0, 0);
	expect_refused(_metadata, env, env->fd, SNP_HOST_MAKE_SHARED, &pg,
		       EINVAL, 0, probe, 2, "MAKE_SHARED at hva + 2K");
	EXPECT_EQ(0, snp_make_shared(env->fd, p, 0));
	munmap(p, SZ_2M);

	/* Level 1 inside a real THP, one page off its start. */
	if (thp_alloc(&thp)) {
		TH_LOG("no THP: 2M alignment checked on 4K pages only");
		return;
	}
	probe[0] = thp.base;
	probe[1] = thp.base + SZ_4K;
	refuse_private(_metadata, env, env->fd,
		       snp_page(thp.base + SZ_4K, 0x200000, 1,
				SNP_HOST_LEVEL_2M),
		       EINVAL, probe, 2, "2M one page into a THP");
	EXPECT_TRUE(thp_intact(&thp));
	thp_free(&thp);
}

TEST_F(snp, einval_level)
{
	const struct env *env = &self->env;
	static const __u8 levels[] = { 2, 3, 0x80, 0xff };
	struct snp_host_page pg;
	void *probe[1];
	char *p;
	size_t i;

	p = map_pages(1);
	ASSERT_NE(NULL, p);
	probe[0] = p;
	for (i = 0; i < sizeof(levels); i++)
		refuse_private(_metadata, env, env->fd,
			       snp_page(p, 0, 1, levels[i]), EINVAL, probe, 1,
			       "MAKE_PRIVATE level > 1");
	ASSERT_EQ(0, snp_make_private(env->fd, p, 0x2000, 1, 0));
	for (i = 0; i < sizeof(levels); i++) {
		pg = snp_page(p, 0, 0, levels[i]);
		expect_refused(_metadata, env, env->fd, SNP_HOST_MAKE_SHARED,
			       &pg, EINVAL, 0, probe, 1, "MAKE_SHARED level > 1");
	}
	EXPECT_EQ(0, snp_make_shared(env->fd, p, 0));
}

TEST_F(snp, einval_reserved)
{
	const struct env *env = &self->env;
	struct snp_host_page pg;
	void *probe[2];
	struct thp thp;
	char *p;

	p = map_pages(1);
	ASSERT_NE(NULL, p);
	probe[0] = p;

	pg = snp_page(p, 0x3000, 1, 0);
	pg.reserved[0] = 1;
	refuse_private(_metadata, env, env->fd, pg, EINVAL, probe, 1,
		       "MAKE_PRIVATE reserved[0]");
	pg = snp_page(p, 0x3000, 1, 0);
	pg.reserved[1] = 1ULL << 63;
	refuse_private(_metadata, env, env->fd, pg, EINVAL, probe, 1,
		       "MAKE_PRIVATE reserved[1]");
	pg = snp_page(p, 0, 0, 0);
	pg.reserved[1] = 1;
	expect_refused(_metadata, env, env->fd, SNP_HOST_LOOKUP, &pg, EINVAL,
		       0, probe, 1, "LOOKUP reserved[1]");

	ASSERT_EQ(0, snp_make_private(env->fd, p, 0x3000, 1, 0));
	pg = snp_page(p, 0, 0, 0);
	pg.reserved[0] = 0x100;
	expect_refused(_metadata, env, env->fd, SNP_HOST_MAKE_SHARED, &pg,
		       EINVAL, 0, probe, 1, "MAKE_SHARED reserved[0]");
	EXPECT_EQ(0, snp_make_shared(env->fd, p, 0));

	if (thp_alloc(&thp)) {
		TH_LOG("no THP: PSMASH reserved fields not checked");
		return;
	}
	probe[0] = thp.base;
	probe[1] = thp.base + SZ_4K;
	ASSERT_EQ(0, snp_make_private(env->fd, thp.base, 0x200000, 1,
				      SNP_HOST_LEVEL_2M));
	pg = snp_page(thp.base, 0, 0, SNP_HOST_LEVEL_2M);
	pg.reserved[0] = 1;
	expect_refused(_metadata, env, env->fd, SNP_HOST_PSMASH, &pg, EINVAL,
		       0, probe, 2, "PSMASH reserved[0]");
	EXPECT_EQ(0, snp_make_shared(env->fd, thp.base, SNP_HOST_LEVEL_2M));
	thp_free(&thp);
}

TEST_F(snp, einval_asid)
{
	const struct env *env = &self->env;
	void *probe[1];
	char *p;

	p = map_pages(1);
	ASSERT_NE(NULL, p);
	probe[0] = p;
	refuse_private(_metadata, env, env->fd, snp_page(p, 0x4000, 0, 0),
		       EINVAL, probe, 1, "ASID 0");
	refuse_private(_metadata, env, env->fd,
		       snp_page(p, 0x4000, 0xffffffffU, 0), EINVAL, probe, 1,
		       "ASID 0xffffffff");
	/* The same page with a usable ASID is accepted. */
	ASSERT_EQ(0, snp_make_private(env->fd, p, 0x4000, 1, 0));
	EXPECT_EQ(0, snp_make_shared(env->fd, p, 0));
}

TEST_F(snp, einval_gpa_alignment)
{
	const struct env *env = &self->env;
	struct thp thp;
	void *probe[2];
	char *p;

	p = map_pages(1);
	ASSERT_NE(NULL, p);
	probe[0] = p;
	refuse_private(_metadata, env, env->fd, snp_page(p, 0x5001, 1, 0),
		       EINVAL, probe, 1, "4K gpa + 1");
	refuse_private(_metadata, env, env->fd, snp_page(p, 0x5800, 1, 0),
		       EINVAL, probe, 1, "4K gpa + 2K");
	ASSERT_EQ(0, snp_make_private(env->fd, p, 0x5000, 1, 0));
	EXPECT_EQ(0, snp_make_shared(env->fd, p, 0));

	if (thp_alloc(&thp)) {
		TH_LOG("no THP: 2M GPA alignment not checked");
		return;
	}
	probe[0] = thp.base;
	probe[1] = thp.base + SZ_4K;
	refuse_private(_metadata, env, env->fd,
		       snp_page(thp.base, 0x201000, 1, SNP_HOST_LEVEL_2M),
		       EINVAL, probe, 2, "2M gpa aligned to 4K only");
	refuse_private(_metadata, env, env->fd,
		       snp_page(thp.base, 0x300000, 1, SNP_HOST_LEVEL_2M),
		       EINVAL, probe, 2, "2M gpa aligned to 1M only");
	ASSERT_EQ(0, snp_make_private(env->fd, thp.base, 0x400000, 1,
				      SNP_HOST_LEVEL_2M));
	EXPECT_EQ(0, snp_make_shared(env->fd, thp.base, SNP_HOST_LEVEL_2M));
	thp_free(&thp);
}

TEST_F(snp, einval_not_anonymous)
{
	const struct env *env = &self->env;
	void *probe[1];
	int exe, mfd;
	char *m;

	/* A regular file mapped private: page-cache pages. */
	exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, exe);
	m = mmap(NULL, SZ_4K, PROT_READ, MAP_PRIVATE, exe, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, madvise(m, SZ_4K, MADV_POPULATE_READ));
	probe[0] = m;
	refuse_private(_metadata, env, env->fd, snp_page(m, 0x6000, 1, 0),
		       EINVAL, probe, 1, "private file mapping");
	munmap(m, SZ_4K);
	close(exe);

	/* memfd (shmem) mapped private and shared. */
	mfd = memfd_create("snp_host_test", MFD_CLOEXEC);
	ASSERT_LE(0, mfd);
	ASSERT_EQ(0, ftruncate(mfd, SZ_4K));
	m = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, madvise(m, SZ_4K, MADV_POPULATE_READ));
	probe[0] = m;
	refuse_private(_metadata, env, env->fd, snp_page(m, 0x6000, 1, 0),
		       EINVAL, probe, 1, "private memfd mapping");
	munmap(m, SZ_4K);
	m = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, m);
	m[0] = 1;
	probe[0] = m;
	refuse_private(_metadata, env, env->fd, snp_page(m, 0x6000, 1, 0),
		       EINVAL, probe, 1, "shared memfd mapping");
	munmap(m, SZ_4K);
	close(mfd);

	/* MAP_SHARED | MAP_ANONYMOUS is shmem too. */
	m = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m);
	m[0] = 1;
	probe[0] = m;
	refuse_private(_metadata, env, env->fd, snp_page(m, 0x6000, 1, 0),
		       EINVAL, probe, 1, "shared anonymous mapping");
	munmap(m, SZ_4K);

	/* Anonymous private memory is accepted. */
	m = map_pages(1);
	ASSERT_NE(NULL, m);
	ASSERT_EQ(0, snp_make_private(env->fd, m, 0x6000, 1, 0));
	EXPECT_EQ(0, snp_make_shared(env->fd, m, 0));
}

/*
 * Without the kernel's fault hooks a hugetlbfs page is refused (a write next
 * to a guest page in it could not be caught); with them, private hugetlbfs
 * pages are accepted (fault_test covers that) and shared ones still refused.
 */
TEST_F(snp, einval_hugetlbfs)
{
	const struct env *env = &self->env;
	const char *nr_path = HUGETLB_2M_DIR "/nr_hugepages";
	struct snp_host_status st;
	long long nr, avail;
	bool raised = false;
	void *probe[2];
	int sharing;
	char *h;

	ASSERT_EQ(0, snp_ioctl(env->fd, SNP_HOST_GET_STATUS, &st));
	sharing = st.flags & SNP_HOST_FLAG_KERNEL_HOOKS ? MAP_SHARED : MAP_PRIVATE;

	nr = read_ll(nr_path);
	avail = read_ll(HUGETLB_2M_DIR "/free_hugepages");
	if (nr < 0 || avail < 0)
		SKIP(return, "no 2M hugetlbfs pages on this kernel");
	if (!avail) {
		raised = !write_ll(nr_path, nr + 1);
		avail = read_ll(HUGETLB_2M_DIR "/free_hugepages");
	}
	h = avail > 0 ? mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE,
			     sharing | MAP_ANONYMOUS | MAP_HUGETLB |
			     (21 << MAP_HUGE_SHIFT), -1, 0) : MAP_FAILED;
	if (h == MAP_FAILED) {
		if (raised)
			write_ll(nr_path, nr);
		SKIP(return, "no 2M hugetlbfs page could be reserved");
	}
	h[0] = 1;
	EXPECT_TRUE(kpf_has(pagemap_pfn(h), KPF_HUGE)) TH_LOG("not a hugetlb page");
	probe[0] = h;
	probe[1] = h + SZ_4K;
	refuse_private(_metadata, env, env->fd, snp_page(h, 0x7000, 1, 0),
		       EINVAL, probe, 2, "hugetlbfs page at 4K");
	refuse_private(_metadata, env, env->fd,
		       snp_page(h, 0x800000, 1, SNP_HOST_LEVEL_2M), EINVAL,
		       probe, 2, "hugetlbfs page at 2M");
	munmap(h, SZ_2M);
	if (raised)
		EXPECT_EQ(0, write_ll(nr_path, nr));
}

TEST_F(snp, einval_level1_not_thp)
{
	const struct env *env = &self->env;
	void *probe[2];
	char *p;

	p = map_anon(SZ_2M, SZ_2M, MADV_NOHUGEPAGE);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, smaps_anon_huge_kb(p)) TH_LOG("premise: no THP here");
	ASSERT_FALSE(kpf_has(pagemap_pfn(p), KPF_THP));
	probe[0] = p;
	probe[1] = p + (PAGES_PER_2M - 1) * SZ_4K;
	refuse_private(_metadata, env, env->fd,
		       snp_page(p, 0xa00000, 1, SNP_HOST_LEVEL_2M), EINVAL,
		       probe, 2, "2M on 4K pages");
	/* The same hva is fine at 4K. */
	ASSERT_EQ(0, snp_make_private(env->fd, p, 0xa00000, 1, 0));
	EXPECT_EQ(0, snp_make_shared(env->fd, p, 0));
	munmap(p, SZ_2M);
}

TEST_F(snp, efault_bad_pointer)
{
	const struct env *env = &self->env;
	static const unsigned long cmds[] = {
		SNP_HOST_GET_STATUS, SNP_HOST_GET_STATS, SNP_HOST_LOOKUP,
		SNP_HOST_MAKE_PRIVATE, SNP_HOST_MAKE_SHARED, SNP_HOST_PSMASH,
	};
	struct snp_host_page pg, *half;
	void *probe[1], *gone;
	char *p, *area;
	size_t i;

	p = map_pages(1);
	ASSERT_NE(NULL, p);
	probe[0] = p;
	gone = mmap(NULL, SZ_4K, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, gone);
	ASSERT_EQ(0, munmap(gone, SZ_4K));
	for (i = 0; i < ARRAY_SIZE(cmds); i++) {
		expect_refused(_metadata, env, env->fd, cmds[i], NULL,
			       EFAULT, 0, probe, 1, "NULL argument");
		expect_refused(_metadata, env, env->fd, cmds[i], gone,
			       EFAULT, 0, probe, 1, "unmapped argument");
		expect_refused(_metadata, env, env->fd, cmds[i], KERNEL_ADDR,
			       EFAULT, 0, probe, 1, "kernel-address argument");
	}

	/* A MAKE_PRIVATE whose struct runs off the end of a mapping. */
	area = mmap(NULL, 2 * SZ_4K, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	ASSERT_EQ(0, munmap(area + SZ_4K, SZ_4K));
	pg = snp_page(p, 0x8000, 1, 0);
	half = (struct snp_host_page *)(area + SZ_4K - 16);
	memcpy(half, &pg, 16);
	expect_refused(_metadata, env, env->fd, SNP_HOST_MAKE_PRIVATE, half,
		       EFAULT, 0, probe, 1, "struct cut by the end of a mapping");
	munmap(area, SZ_4K);
}

TEST_F(snp, efault_unmapped_hva)
{
	const struct env *env = &self->env;
	struct snp_host_page pg;
	void *probe[1];
	char *p, *gone;

	p = map_pages(1);
	ASSERT_NE(NULL, p);
	probe[0] = p;
	gone = map_pages(1);
	ASSERT_NE(NULL, gone);
	ASSERT_EQ(0, munmap(gone, SZ_4K));

	pg = snp_page(gone, 0, 0, 0);
	expect_refused(_metadata, env, env->fd, SNP_HOST_LOOKUP, &pg, EFAULT,
		       0, probe, 1, "LOOKUP of an unmapped hva");
	refuse_private(_metadata, env, env->fd, snp_page(gone, 0x9000, 1, 0),
		       EFAULT, probe, 1, "MAKE_PRIVATE of an unmapped hva");
	pg = snp_page(KERNEL_ADDR, 0, 0, 0);
	expect_refused(_metadata, env, env->fd, SNP_HOST_LOOKUP, &pg, EFAULT,
		       0, probe, 1, "LOOKUP of a kernel address");
	refuse_private(_metadata, env, env->fd,
		       snp_page(KERNEL_ADDR, 0x9000, 1, 0), EFAULT, probe, 1,
		       "MAKE_PRIVATE of a kernel address");
}

TEST_F(snp, ebusy_already_assigned)
{
	const struct env *env = &self->env;
	const struct want w = { .assigned = 1, .asid = 1, .gpa = 0xb000 };
	int fd2, budget = LOG_BUDGET;
	struct thp thp;
	void *probe[2];
	char *p;

	p = map_pages(1);
	ASSERT_NE(NULL, p);
	probe[0] = p;
	ASSERT_EQ(0, snp_make_private(env->fd, p, w.gpa, w.asid, 0));
	refuse_private(_metadata, env, env->fd, snp_page(p, w.gpa, w.asid, 0),
		       EBUSY, probe, 1, "same MAKE_PRIVATE twice");
	refuse_private(_metadata, env, env->fd, snp_page(p, 0xc000, 2, 0),
		       EBUSY, probe, 1, "MAKE_PRIVATE with another gpa and asid");

	fd2 = snp_open();
	ASSERT_LE(0, fd2);
	refuse_private(_metadata, env, fd2, snp_page(p, 0xc000, 2, 0), EBUSY,
		       probe, 1, "MAKE_PRIVATE through a second file");
	/* LOOKUP is per process: the second file sees the same entry. */
	EXPECT_EQ(0, lookup_bad(_metadata, fd2, p, &w, &budget));
	close(fd2);
	/* Closing the second file released nothing of the first's. */
	EXPECT_EQ(0, lookup_bad(_metadata, env->fd, p, &w, &budget));
	EXPECT_EQ(0, snp_make_shared(env->fd, p, 0));

	if (thp_alloc(&thp)) {
		TH_LOG("no THP: 2M EBUSY not checked");
		return;
	}
	probe[0] = thp.base;
	probe[1] = thp.base + 100 * SZ_4K;
	ASSERT_EQ(0, snp_make_private(env->fd, thp.base, 0x200000, 1,
				      SNP_HOST_LEVEL_2M));
	refuse_private(_metadata, env, env->fd,
		       snp_page(thp.base, 0x400000, 2, SNP_HOST_LEVEL_2M),
		       EBUSY, probe, 2, "2M MAKE_PRIVATE twice");
	refuse_private(_metadata, env, env->fd,
		       snp_page(probe[1], 0x1000, 2, 0), EBUSY, probe, 2,
		       "4K MAKE_PRIVATE inside an assigned 2M page");
	EXPECT_EQ(0, snp_make_shared(env->fd, thp.base, SNP_HOST_LEVEL_2M));
	thp_free(&thp);
}

TEST_F(snp, enoent_not_assigned_by_this_file)
{
	const struct env *env = &self->env;
	const struct want w = { .assigned = 1, .asid = 1, .gpa = 0xd000 };
	int fd2, budget = LOG_BUDGET;
	struct snp_host_page pg;
	struct thp thp;
	void *probe[2];
	char *p;

	p = map_pages(2);
	ASSERT_NE(NULL, p);
	probe[0] = p;
	probe[1] = p + SZ_4K;
	pg = snp_page(p + SZ_4K, 0, 0, 0);
	expect_refused(_metadata, env, env->fd, SNP_HOST_MAKE_SHARED, &pg,
		       ENOENT, 0, probe, 2, "MAKE_SHARED of a page never assigned");

	fd2 = snp_open();
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, snp_make_private(env->fd, p, w.gpa, w.asid, 0));
	pg = snp_page(p, 0, 0, 0);
	expect_refused(_metadata, env, fd2, SNP_HOST_MAKE_SHARED, &pg, ENOENT,
		       0, probe, 2, "MAKE_SHARED through another file");

	if (thp_alloc(&thp)) {
		TH_LOG("no THP: PSMASH ENOENT not checked");
	} else {
		probe[0] = thp.base;
		probe[1] = thp.base + SZ_4K;
		pg = snp_page(thp.base, 0, 0, SNP_HOST_LEVEL_2M);
		expect_refused(_metadata, env, env->fd, SNP_HOST_PSMASH, &pg,
			       ENOENT, 0, probe, 2, "PSMASH of an unassigned THP");
		ASSERT_EQ(0, snp_make_private(env->fd, thp.base, 0x200000, 1,
					      SNP_HOST_LEVEL_2M));
		expect_refused(_metadata, env, fd2, SNP_HOST_PSMASH, &pg,
			       ENOENT, 0, probe, 2, "PSMASH through another file");
		expect_refused(_metadata, env, fd2, SNP_HOST_MAKE_SHARED, &pg,
			       ENOENT, 0, probe, 2,
			       "2M MAKE_SHARED through another file");
		EXPECT_EQ(0, snp_make_shared(env->fd, thp.base,
					     SNP_HOST_LEVEL_2M));
		thp_free(&thp);
	}

	close(fd2);
	EXPECT_EQ(0, lookup_bad(_metadata, env->fd, p, &w, &budget));
	EXPECT_EQ(0, snp_make_shared(env->fd, p, 0));
}

TEST_F(snp, enotty_unknown_ioctl)
{
	const struct env *env = &self->env;
	static const unsigned long cmds[] = {
		_IO(SNP_HOST_IOCTL_TYPE, 0x3f),
		_IOWR(SNP_HOST_IOCTL_TYPE, 0x05, struct snp_host_page),
		_IOWR(SNP_HOST_IOCTL_TYPE, 0x06, struct snp_host_page),
		_IOWR(SNP_HOST_IOCTL_TYPE, 0x08, struct snp_host_page),
		/* MAKE_PRIVATE's number with another type, size or direction. */
		_IOWR('S', 0x02, struct snp_host_page),
		_IOC(_IOC_READ | _IOC_WRITE, SNP_HOST_IOCTL_TYPE, 0x02,
		     sizeof(struct snp_host_page) - 16),
		_IOW(SNP_HOST_IOCTL_TYPE, 0x02, struct snp_host_page),
		/* GET_STATUS with a short buffer. */
		_IOR(SNP_HOST_IOCTL_TYPE, 0x00, __u32),
		/* A tty ioctl. */
		0x5401,
	};
	struct snp_host_page pg;
	void *probe[1];
	char what[64];
	char *p;
	size_t i;

	p = map_pages(1);
	ASSERT_NE(NULL, p);
	probe[0] = p;
	/* The argument is a valid MAKE_PRIVATE: a misrouted command would show. */
	for (i = 0; i < ARRAY_SIZE(cmds); i++) {
		pg = snp_page(p, 0xe000, 1, 0);
		snprintf(what, sizeof(what), "ioctl 0x%lx", cmds[i]);
		expect_refused(_metadata, env, env->fd, cmds[i], &pg, ENOTTY,
			       0, probe, 1, what);
	}
	pg = snp_page(p, 0xe000, 1, 0);
	ASSERT_EQ(0, snp_ioctl(env->fd, SNP_HOST_MAKE_PRIVATE, &pg));
	EXPECT_EQ(0, snp_make_shared(env->fd, p, 0));
}

TEST(open_refused_non_root)
{
	int fd;

	if (geteuid())
		SKIP(return, "needs root to become nobody");
	if (access(SNP_MODULE_DIR, F_OK))
		SKIP(return, "snp_host.ko is not loaded");
	fd = snp_open();
	ASSERT_LE(0, fd) TH_LOG("root cannot open: %s", strerror(-fd));
	close(fd);

	ASSERT_EQ(0, setgroups(0, NULL));
	ASSERT_EQ(0, setresgid(NOBODY, NOBODY, NOBODY));
	ASSERT_EQ(0, setresuid(NOBODY, NOBODY, NOBODY));
	ASSERT_EQ((uid_t)NOBODY, geteuid());
	fd = snp_open();
	EXPECT_EQ(-EACCES, fd);
	if (fd >= 0)
		close(fd);
}

TEST(open_refused_without_cap_sys_admin)
{
	int fd;

	if (geteuid() || !has_cap(CAP_SYS_ADMIN))
		SKIP(return, "needs root with CAP_SYS_ADMIN");
	if (access(SNP_MODULE_DIR, F_OK))
		SKIP(return, "snp_host.ko is not loaded");
	fd = snp_open();
	ASSERT_LE(0, fd) TH_LOG("root cannot open: %s", strerror(-fd));
	close(fd);

	/* Losing some other capability does not matter. */
	ASSERT_EQ(0, drop_cap(CAP_NET_RAW));
	fd = snp_open();
	EXPECT_LE(0, fd) TH_LOG("refused without CAP_NET_RAW: %s", strerror(-fd));
	if (fd >= 0)
		close(fd);

	ASSERT_EQ(0, prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0));
	ASSERT_EQ(0, drop_cap(CAP_SYS_ADMIN));
	ASSERT_FALSE(has_cap(CAP_SYS_ADMIN));
	ASSERT_EQ(0U, geteuid());
	/* Still root, so the 0600 mode lets us in: only the module refuses. */
	fd = snp_open();
	EXPECT_EQ(-EPERM, fd);
	if (fd >= 0)
		close(fd);
}

/* The PFN a forked child sees at @hva, 0 on error. */
static __u64 child_pfn(void *hva)
{
	__u64 pfn = 0;
	int pipefd[2];
	pid_t pid;

	if (pipe(pipefd))
		return 0;
	pid = fork();
	if (pid == 0) {
		pfn = pagemap_pfn(hva);
		_exit(write(pipefd[1], &pfn, sizeof(pfn)) == sizeof(pfn) ? 0 : 1);
	}
	close(pipefd[1]);
	if (pid > 0) {
		if (read(pipefd[0], &pfn, sizeof(pfn)) != sizeof(pfn))
			pfn = 0;
		waitpid(pid, NULL, 0);
	}
	close(pipefd[0]);
	return pfn;
}

/*
 * fork() shares an exclusive anonymous page with the child (same PFN) unless
 * the page may be pinned (FOLL_PIN), in which case it copies it: so the
 * child's PFN tells whether the module holds a pin on the page.
 */
TEST_F(snp, pinned_while_private)
{
	const struct env *env = &self->env;
	const int n = 4;
	long long acq0, acq1, rel0, rel1;
	__u64 pfn[4], c;
	int i, bad;
	char *p;

	p = map_pages(n);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, pagemap_pfns(p, n, pfn));
	for (i = 0, bad = 0; i < n; i++)
		bad += pfn[i] != child_pfn(p + i * SZ_4K);
	ASSERT_EQ(0, bad) TH_LOG("premise: fork shares an unpinned page");

	acq0 = vmstat_read("nr_foll_pin_acquired");
	ASSERT_EQ(0, convert_range(env->fd, p, n, 0xf0000, 1, &i));
	acq1 = vmstat_read("nr_foll_pin_acquired");
	if (acq0 >= 0)
		EXPECT_LE(acq0 + n, acq1) TH_LOG("no FOLL_PIN taken");
	ASSERT_EQ(0, pagemap_pfns(p, n, pfn));
	for (i = 0; i < n; i++) {
		c = child_pfn(p + i * SZ_4K);
		EXPECT_NE(0ULL, c);
		EXPECT_NE(pfn[i], c) TH_LOG("page %d is not pinned", i);
	}

	rel0 = vmstat_read("nr_foll_pin_released");
	ASSERT_EQ(0, convert_range(env->fd, p, n, 0, 0, &i));
	rel1 = vmstat_read("nr_foll_pin_released");
	if (rel0 >= 0)
		EXPECT_LE(rel0 + n, rel1) TH_LOG("no pin released");
	for (i = 0, bad = 0; i < n; i++)
		bad += pagemap_pfn(p + i * SZ_4K) != child_pfn(p + i * SZ_4K);
	EXPECT_EQ(0, bad) TH_LOG("pages still pinned after MAKE_SHARED");
}

TEST_F(snp, close_releases)
{
	const struct env *env = &self->env;
	const struct want keep_w = { .assigned = 1, .asid = 9, .gpa = 0x9000 };
	struct snp_host_stats st0, st1, st2;
	long long rel0, rel1;
	int fd2, i, bad, budget = LOG_BUDGET;
	bool have_thp = false;
	struct thp a, b;
	char *keep, *p;
	__u64 pfn[16];

	keep = map_pages(1);
	p = map_pages(16);
	ASSERT_NE(NULL, keep);
	ASSERT_NE(NULL, p);
	if (!thp_alloc(&a)) {
		have_thp = !thp_alloc(&b);
		if (!have_thp)
			thp_free(&a);
	}
	if (!have_thp)
		TH_LOG("no THP: only 4K assignments are released");

	fd2 = snp_open();
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, snp_make_private(env->fd, keep, keep_w.gpa, keep_w.asid, 0));
	read_stats(_metadata, env->fd, &st0);
	rel0 = vmstat_read("nr_foll_pin_released");

	ASSERT_EQ(0, convert_range(fd2, p, 16, 0x100000, 5, &i));
	ASSERT_EQ(0, pagemap_pfns(p, 16, pfn));
	if (have_thp) {
		ASSERT_EQ(0, snp_make_private(fd2, a.base, 0x200000, 5,
					      SNP_HOST_LEVEL_2M));
		ASSERT_EQ(0, snp_make_private(fd2, b.base, 0x400000, 5,
					      SNP_HOST_LEVEL_2M));
		ASSERT_EQ(0, snp_psmash(fd2, b.base));
		ASSERT_EQ(0, convert_range(fd2, b.base, PAGES_PER_2M / 2, 0, 0,
					   &i));
	}
	/* One page shared before close, one unmapped while still private. */
	ASSERT_EQ(0, snp_make_shared(fd2, p + 15 * SZ_4K, 0));
	ASSERT_EQ(0, munmap(p + 14 * SZ_4K, SZ_4K));
	read_stats(_metadata, env->fd, &st1);
	EXPECT_EQ(15 + (have_thp ? PAGES_PER_2M / 2 : 0),
		  (long long)(st1.private_4k - st0.private_4k));
	EXPECT_EQ(have_thp ? 1 : 0, (long long)(st1.private_2m - st0.private_2m));

	ASSERT_EQ(0, close(fd2));
	read_stats(_metadata, env->fd, &st2);
	EXPECT_EQ(st0.private_4k, st2.private_4k);
	EXPECT_EQ(st0.private_2m, st2.private_2m);
	EXPECT_EQ(st0.leaked_pages, st2.leaked_pages);
	EXPECT_EQ(st0.failures, st2.failures);
	rel1 = vmstat_read("nr_foll_pin_released");
	if (rel0 >= 0)
		EXPECT_LE(rel0 + 16, rel1) TH_LOG("pins not released");

	bad = 0;
	for (i = 0; i < 16; i++)
		if (i != 14)
			bad += lookup_bad(_metadata, env->fd, p + i * SZ_4K,
					  &unassigned, &budget);
	EXPECT_EQ(0, bad);
	expect_rmp(_metadata, env, pfn, 16, &unassigned, 0);
	if (have_thp) {
		EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, a.base,
					      PAGES_PER_2M, &unassigned, 0));
		EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, b.base,
					      PAGES_PER_2M, &unassigned, 0));
		expect_rmp_range(_metadata, env, a.pfn, 1, &unassigned, 0);
		expect_rmp_range(_metadata, env, b.pfn, PAGES_PER_2M,
				 &unassigned, 0);
	}
	/* The other file's page is untouched. */
	EXPECT_EQ(0, lookup_bad(_metadata, env->fd, keep, &keep_w, &budget));
	pfn[0] = pagemap_pfn(keep);
	expect_rmp(_metadata, env, pfn, 1, &keep_w, 0);

	/* The host may write everything fd2 had. */
	memset(p, 0x5a, 14 * SZ_4K);
	if (have_thp) {
		memset(a.base, 0x5a, SZ_2M);
		memset(b.base, 0x5a, SZ_2M);
		thp_free(&a);
		thp_free(&b);
	}
	EXPECT_EQ(0, snp_make_shared(env->fd, keep, 0));
}

/* Shared between a test and the children it forks. */
struct child_report {
	int ret;
	__u64 pfn[32];
	char why[160];
};

/* A process killed while holding private pages leaves none behind. */
TEST_F(snp, exit_releases)
{
	const struct env *env = &self->env;
	const struct want w = { .assigned = 1, .asid = 6, .gpa = 0x300000 };
	struct snp_host_stats st0, st1, st2;
	struct child_report *rep;
	int ready[2], hold[2], i, fd;
	char c = 0, *p;
	pid_t pid;

	rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, rep);
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(hold));
	read_stats(_metadata, env->fd, &st0);

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		fd = snp_open();
		p = map_pages(8);
		rep->ret = fd < 0 ? fd : p ? 0 : -ENOMEM;
		for (i = 0; i < 8 && !rep->ret; i++)
			rep->ret = snp_make_private(fd, p + i * SZ_4K,
						    w.gpa + i * SZ_4K, w.asid, 0);
		if (!rep->ret)
			rep->ret = pagemap_pfns(p, 8, rep->pfn);
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		/* Never answered: the parent kills us. */
		if (read(hold[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	EXPECT_EQ(0, rep->ret) TH_LOG("child: %s", strerror(-rep->ret));
	read_stats(_metadata, env->fd, &st1);
	EXPECT_EQ(8LL, (long long)(st1.private_4k - st0.private_4k));
	expect_rmp(_metadata, env, rep->pfn, 8, &w, SZ_4K);

	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, NULL, 0));
	read_stats(_metadata, env->fd, &st2);
	EXPECT_EQ(st0.private_4k, st2.private_4k);
	EXPECT_EQ(st0.private_2m, st2.private_2m);
	EXPECT_EQ(st0.leaked_pages, st2.leaked_pages);
	expect_rmp(_metadata, env, rep->pfn, 8, &unassigned, 0);
	close(ready[0]);
	close(hold[1]);
}

#define TWO_PROC_PAGES	32

/*
 * The child's side of two_processes: takes its own copy of the @n pages at
 * @p, assigns them to @asid, says @ready, waits for @go, checks that they are
 * still its own, and returns them.  Returns 0, or -1 with @rep->why set.
 */
static int child_convert(char *p, int n, __u32 asid, __u64 gpa,
			 struct child_report *rep, int ready, int go)
{
	struct snp_host_page pg;
	int i, fd, ret;
	char c = 0;

	fd = snp_open();
	if (fd < 0) {
		snprintf(rep->why, sizeof(rep->why), "open: %s", strerror(-fd));
		return -1;
	}
	for (i = 0; i < n; i++)
		p[i * SZ_4K] = (char)asid;	/* break COW: a page of our own */
	if (pagemap_pfns(p, n, rep->pfn)) {
		snprintf(rep->why, sizeof(rep->why), "pagemap unreadable");
		return -1;
	}
	for (i = 0; i < n; i++) {
		ret = snp_make_private(fd, p + i * SZ_4K, gpa + i * SZ_4K, asid, 0);
		if (ret) {
			snprintf(rep->why, sizeof(rep->why),
				 "MAKE_PRIVATE %d: %s", i, strerror(-ret));
			return -1;
		}
	}
	if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1) {
		snprintf(rep->why, sizeof(rep->why), "lost the parent");
		return -1;
	}
	for (i = 0; i < n; i++) {
		ret = snp_lookup(fd, p + i * SZ_4K, &pg);
		if (ret || !pg.assigned || pg.asid != asid || pg.level ||
		    pg.gpa != gpa + i * SZ_4K || pg.pfn != rep->pfn[i] ||
		    pg.pfn != pagemap_pfn(p + i * SZ_4K)) {
			snprintf(rep->why, sizeof(rep->why),
				 "LOOKUP %d: ret %d assigned %u asid %u gpa 0x%llx pfn 0x%llx",
				 i, ret, pg.assigned, pg.asid, pg.gpa, pg.pfn);
			return -1;
		}
	}
	for (i = 0; i < n; i++) {
		ret = snp_make_shared(fd, p + i * SZ_4K, 0);
		if (!ret)
			ret = snp_lookup(fd, p + i * SZ_4K, &pg);
		if (ret || pg.assigned || pg.asid || pg.gpa) {
			snprintf(rep->why, sizeof(rep->why),
				 "MAKE_SHARED %d: ret %d assigned %u", i, ret,
				 pg.assigned);
			return -1;
		}
	}
	close(fd);
	return 0;
}

/*
 * A parent and its child convert pages at the same addresses (fork gave them
 * the same layout) at the same time; each has its own pages and sees only
 * its own assignments, and the module counts both.
 */
TEST_F(snp, two_processes)
{
	const struct env *env = &self->env;
	const struct want pw = { .assigned = 1, .asid = 5, .gpa = 0x1000000 };
	const struct want cw = { .assigned = 1, .asid = 6, .gpa = 0x2000000 };
	struct snp_host_stats st0, st1, st2;
	int ready[2], go[2], i, j, status, shared_pfns = 0;
	struct child_report *rep;
	__u64 pfn[TWO_PROC_PAGES];
	char c = 0, *p;
	pid_t pid;

	rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, rep);
	p = map_pages(TWO_PROC_PAGES);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	read_stats(_metadata, env->fd, &st0);

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		close(env->fd);
		rep->ret = child_convert(p, TWO_PROC_PAGES, cw.asid, cw.gpa,
					 rep, ready[1], go[0]);
		_exit(rep->ret ? 1 : 0);
	}
	close(ready[1]);
	close(go[0]);

	/* Our own pages, converted while the child converts its own. */
	for (i = 0; i < TWO_PROC_PAGES; i++)
		p[i * SZ_4K] = (char)pw.asid;
	ASSERT_EQ(0, convert_range(env->fd, p, TWO_PROC_PAGES, pw.gpa,
				   pw.asid, &i));
	ASSERT_EQ(1, read(ready[0], &c, 1)) TH_LOG("child: %s", rep->why);

	/* Both hold their pages now. */
	read_stats(_metadata, env->fd, &st1);
	expect_delta(_metadata, &st0, &st1, 2 * TWO_PROC_PAGES, 0,
		     2 * TWO_PROC_PAGES, 0, 0);
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, p, TWO_PROC_PAGES,
				      &pw, SZ_4K));
	ASSERT_EQ(0, pagemap_pfns(p, TWO_PROC_PAGES, pfn));
	for (i = 0; i < TWO_PROC_PAGES; i++)
		for (j = 0; j < TWO_PROC_PAGES; j++)
			shared_pfns += pfn[i] == rep->pfn[j];
	EXPECT_EQ(0, shared_pfns) TH_LOG("parent and child hold the same PFN");
	expect_rmp(_metadata, env, pfn, TWO_PROC_PAGES, &pw, SZ_4K);
	expect_rmp(_metadata, env, rep->pfn, TWO_PROC_PAGES, &cw, SZ_4K);

	ASSERT_EQ(1, write(go[1], &c, 1));
	EXPECT_EQ(0, convert_range(env->fd, p, TWO_PROC_PAGES, 0, 0, &i));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("child: %s", rep->why);
	read_stats(_metadata, env->fd, &st2);
	expect_delta(_metadata, &st0, &st2, 0, 0, 2 * TWO_PROC_PAGES,
		     2 * TWO_PROC_PAGES, 0);
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, p, TWO_PROC_PAGES,
				      &unassigned, 0));
	expect_rmp(_metadata, env, pfn, TWO_PROC_PAGES, &unassigned, 0);
	expect_rmp(_metadata, env, rep->pfn, TWO_PROC_PAGES, &unassigned, 0);
	close(ready[0]);
	close(go[1]);
}

#define NR_THREADS		8
#define PAGES_PER_THREAD	64
#define NR_THREAD_PAGES		(NR_THREADS * PAGES_PER_THREAD)

struct worker {
	int fd;
	int idx;
	char *base;
	pthread_barrier_t *bar;
	int errors;
	char why[160];
};

/* Thread @t's page @i: threads interleave, so neighbours race in one 2M range. */
static char *worker_page(char *base, int t, int i)
{
	return base + ((size_t)i * NR_THREADS + t) * SZ_4K;
}

static __u64 worker_gpa(int t, int i)
{
	return 0x100000000ULL + ((__u64)t << 24) + (__u64)i * SZ_4K;
}

static void worker_fail(struct worker *w, const char *what, int i, int ret)
{
	if (!w->errors++)
		snprintf(w->why, sizeof(w->why), "%s page %d: %s", what, i,
			 ret < 0 ? strerror(-ret) : "wrong entry");
}

/*
 * Assigns its pages, checks them, meets the others twice at the barrier
 * (while the main thread inspects), then returns and checks them.  Errors
 * are counted, never asserted: the barriers must be met whatever happens.
 */
static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	struct snp_host_page pg;
	char *hva;
	int i, ret;

	pthread_barrier_wait(w->bar);
	for (i = 0; i < PAGES_PER_THREAD; i++) {
		ret = snp_make_private(w->fd, worker_page(w->base, w->idx, i),
				       worker_gpa(w->idx, i), w->idx + 1, 0);
		if (ret)
			worker_fail(w, "MAKE_PRIVATE", i, ret);
	}
	for (i = 0; i < PAGES_PER_THREAD; i++) {
		ret = snp_lookup(w->fd, worker_page(w->base, w->idx, i), &pg);
		if (ret || !pg.assigned || pg.asid != (__u32)w->idx + 1 ||
		    pg.gpa != worker_gpa(w->idx, i) || pg.level)
			worker_fail(w, "LOOKUP after MAKE_PRIVATE", i, ret);
	}
	pthread_barrier_wait(w->bar);
	pthread_barrier_wait(w->bar);
	for (i = 0; i < PAGES_PER_THREAD; i++) {
		hva = worker_page(w->base, w->idx, i);
		ret = snp_make_shared(w->fd, hva, 0);
		if (ret)
			worker_fail(w, "MAKE_SHARED", i, ret);
		ret = snp_lookup(w->fd, hva, &pg);
		if (ret || pg.assigned || pg.asid || pg.gpa)
			worker_fail(w, "LOOKUP after MAKE_SHARED", i, ret);
	}
	return NULL;
}

/* 8 threads x 64 pages through one file, all at once on every CPU. */
TEST_F_TIMEOUT(snp, threads, 60)
{
	const struct env *env = &self->env;
	struct worker w[NR_THREADS];
	struct snp_host_stats st0, st1, st2;
	int t, i, bad = 0, budget = LOG_BUDGET;
	__u64 pfn[NR_THREAD_PAGES];
	pthread_t tid[NR_THREADS];
	pthread_barrier_t bar;
	struct want want;
	char *base;

	base = map_pages(NR_THREAD_PAGES);
	ASSERT_NE(NULL, base);
	ASSERT_EQ(0, pthread_barrier_init(&bar, NULL, NR_THREADS + 1));
	read_stats(_metadata, env->fd, &st0);
	for (t = 0; t < NR_THREADS; t++) {
		memset(&w[t], 0, sizeof(w[t]));
		w[t].fd = env->fd;
		w[t].idx = t;
		w[t].base = base;
		w[t].bar = &bar;
		ASSERT_EQ(0, pthread_create(&tid[t], NULL, worker_fn, &w[t]));
	}
	pthread_barrier_wait(&bar);
	pthread_barrier_wait(&bar);

	/* Every page is private now. */
	read_stats(_metadata, env->fd, &st1);
	expect_delta(_metadata, &st0, &st1, NR_THREAD_PAGES, 0,
		     NR_THREAD_PAGES, 0, 0);
	for (t = 0; t < NR_THREADS; t++) {
		for (i = 0; i < PAGES_PER_THREAD; i++) {
			want = (struct want){ .assigned = 1, .asid = t + 1,
					      .gpa = worker_gpa(t, i) };
			bad += lookup_bad(_metadata, env->fd,
					  worker_page(base, t, i), &want, &budget);
		}
	}
	EXPECT_EQ(0, bad);
	/* Pinned now, so these PFNs stay put until the end. */
	ASSERT_EQ(0, pagemap_pfns(base, NR_THREAD_PAGES, pfn));
	for (t = 0; t < NR_THREADS; t++) {
		__u64 tp[PAGES_PER_THREAD];

		for (i = 0; i < PAGES_PER_THREAD; i++)
			tp[i] = pfn[(worker_page(base, t, i) - base) / SZ_4K];
		want = (struct want){ .assigned = 1, .asid = t + 1,
				      .gpa = worker_gpa(t, 0) };
		expect_rmp(_metadata, env, tp, PAGES_PER_THREAD, &want, SZ_4K);
	}

	pthread_barrier_wait(&bar);
	for (t = 0; t < NR_THREADS; t++) {
		pthread_join(tid[t], NULL);
		EXPECT_EQ(0, w[t].errors) TH_LOG("thread %d: %s", t, w[t].why);
	}
	read_stats(_metadata, env->fd, &st2);
	expect_delta(_metadata, &st0, &st2, 0, 0, NR_THREAD_PAGES,
		     NR_THREAD_PAGES, 0);
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, base,
				      NR_THREAD_PAGES, &unassigned, 0));
	expect_rmp(_metadata, env, pfn, NR_THREAD_PAGES, &unassigned, 0);
	pthread_barrier_destroy(&bar);
}

TEST_F(snp, debugfs_views)
{
	const struct env *env = &self->env;
	const struct want w = { .assigned = 1, .asid = 7, .gpa = 0x7654000 };
	const char *name;
	struct rmp_table t;
	__u64 pfn[2];
	char *text, *p;

	if (!debugfs_mounted())
		SKIP(return, "debugfs is not mounted at " DEBUGFS_ROOT);
	ASSERT_TRUE(env->debugfs) TH_LOG("debugfs has no snp_host directory");
	text = read_text(SNP_DEBUGFS_STATUS);
	ASSERT_NE(NULL, text) TH_LOG("%s: %s", SNP_DEBUGFS_STATUS, strerror(errno));
	name = self->status.backend == SNP_HOST_BACKEND_HARDWARE ? "hardware" :
								   "emulated";
	EXPECT_NE(NULL, strcasestr(text, name))
		TH_LOG("status does not name the %s backend:\n%s", name, text);
	free(text);

	ASSERT_EQ(0, rmp_table_read(&t));
	EXPECT_EQ(0, t.bad) TH_LOG("rmp has lines of an unknown format");
	rmp_table_free(&t);

	p = map_pages(2);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, snp_make_private(env->fd, p, w.gpa, w.asid, 0));
	ASSERT_EQ(0, pagemap_pfns(p, 2, pfn));
	expect_dbg_lookup(_metadata, env, pfn[0], &w, true);
	expect_dbg_lookup(_metadata, env, pfn[0], &w, false);
	expect_dbg_lookup(_metadata, env, pfn[1], &unassigned, true);
	expect_dbg_lookup(_metadata, env, pfn[1], &unassigned, false);
	expect_rmp(_metadata, env, pfn, 1, &w, 0);
	expect_rmp(_metadata, env, pfn + 1, 1, &unassigned, 0);

	ASSERT_EQ(0, snp_make_shared(env->fd, p, 0));
	expect_dbg_lookup(_metadata, env, pfn[0], &unassigned, false);
	expect_rmp(_metadata, env, pfn, 1, &unassigned, 0);
}

TEST_HARNESS_MAIN
