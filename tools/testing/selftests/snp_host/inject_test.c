// SPDX-License-Identifier: GPL-2.0
/*
 * Injected failures (issue 11): each failure point of the module, and
 * allocation failures at every allocation site of a conversion, must end as
 * the ABI promises, and the outcome is checked through stable interfaces.
 *
 *   fail_rmpupdate_busy     RMPUPDATE finds its region busy: retried; EBUSY
 *                           once the retries run out, with nothing changed
 *   fail_rmpupdate_shared   RMPUPDATE back to the host fails for good: EIO,
 *                           the page is leaked (assigned, pinned, no store)
 *   fail_psmash_busy        PSMASH finds its region busy: EBUSY, still 2M
 *   fail_directmap_restore  the direct map cannot be restored: the page is
 *                           leaked, never freed while protected
 *   failslab/fail_page_alloc with /proc/thread-self/fail-nth: the n-th
 *                           allocation of a conversion fails, for every n:
 *                           ENOMEM and nothing changed, or success
 *
 * "Nothing changed" is read from LOOKUP, GET_STATS, /proc/self/status
 * (VmPin), /proc/vmstat (FOLL_PIN balance) and a store to the page.  The
 * failure points are the module's fault attributes in debugfs
 * (snp_host/inject.rs), with task-filter on so that only this process fails.
 * Emulated backend only (a hardware RMP is never faked): skip elsewhere.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "snp_host_util.h"

#define POINT(name)	SNP_DEBUGFS "/" name
#define FAILSLAB	DEBUGFS_ROOT "/failslab"
#define FAIL_PAGE_ALLOC	DEBUGFS_ROOT "/fail_page_alloc"

/* Arms the failure point @dir: fail @times times (-1: always) from now on. */
static int arm(const char *dir, long long times)
{
	char path[256];
	static const char *const knobs[][2] = {
		{ "verbose", "0" }, { "interval", "1" }, { "space", "0" },
		{ "task-filter", "Y" }, { "probability", "100" },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(knobs); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, knobs[i][0]);
		if (write_str(path, knobs[i][1]))
			return -1;
	}
	snprintf(path, sizeof(path), "%s/times", dir);
	return write_ll(path, times);
}

static void disarm(const char *dir)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/probability", dir);
	write_str(path, "0");
	snprintf(path, sizeof(path), "%s/times", dir);
	write_str(path, "0");
}

/*
 * One store to @p in this process: whether it raised SIGBUS.  Not from a
 * child: fork() gives a child its own copy of a pinned anonymous page.
 */
static sigjmp_buf store_jb;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(store_jb, 1);
}

static bool store_sigbus(char *p)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	bool faulted = false;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &old))
		return false;
	if (sigsetjmp(store_jb, 1)) {
		faulted = true;
	} else {
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		__atomic_store_n(p, 0x5a, __ATOMIC_RELAXED);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	}
	sigaction(SIGBUS, &old, NULL);
	return faulted;
}

/* A store to @p works, and reads back. */
static bool store_works(char *p)
{
	return !store_sigbus(p) && __atomic_load_n(p, __ATOMIC_RELAXED) == 0x5a;
}

static bool assigned(int fd, void *hva, __u8 *level)
{
	struct snp_host_page p;

	if (snp_lookup(fd, hva, &p))
		return false;
	if (level)
		*level = p.level;
	return p.assigned;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

FIXTURE(inject) {
	int fd;
};

FIXTURE_SETUP(inject)
{
	struct snp_host_status st;

	self->fd = snp_open();
	if (self->fd < 0)
		SKIP(return, "no " SNP_DEV " (module not loaded)");
	ASSERT_EQ(0, snp_get_status(self->fd, &st));
	if (st.backend != SNP_HOST_BACKEND_EMULATED)
		SKIP(return, "emulated backend only: a hardware RMP is never faked");
	if (access(POINT("fail_rmpupdate_busy"), F_OK))
		SKIP(return, "no failure points in debugfs (CONFIG_FAULT_INJECTION_DEBUG_FS off)");
	/* Only this process (and its children) fails. */
	ASSERT_EQ(0, write_str("/proc/self/make-it-fail", "1"));
}

FIXTURE_TEARDOWN(inject)
{
	disarm(POINT("fail_rmpupdate_busy"));
	disarm(POINT("fail_rmpupdate_shared"));
	disarm(POINT("fail_psmash_busy"));
	disarm(POINT("fail_directmap_restore"));
	if (self->fd >= 0)
		close(self->fd);
}

/* A region that stays busy: retried for about a second, then EBUSY. */
TEST_F(inject, busy_rmpupdate_gives_ebusy_and_changes_nothing)
{
	char *page = map_pages(1);
	struct snp_host_stats s0, s1;
	long long pin0 = proc_status_kb(0, "VmPin"), held0 = foll_pins_held();
	double t;

	ASSERT_NE(NULL, page);
	ASSERT_EQ(0, snp_get_stats(self->fd, &s0));
	ASSERT_EQ(0, arm(POINT("fail_rmpupdate_busy"), -1));
	t = now();
	EXPECT_EQ(-EBUSY, snp_make_private(self->fd, page, 0x1000, 1, SNP_HOST_LEVEL_4K));
	t = now() - t;
	disarm(POINT("fail_rmpupdate_busy"));
	ASSERT_EQ(0, snp_get_stats(self->fd, &s1));
	TH_LOG("EBUSY after %.2f s and %llu retries", t,
	       (unsigned long long)(s1.transient_retries - s0.transient_retries));
	EXPECT_GT(s1.transient_retries, s0.transient_retries);
	EXPECT_EQ(s0.private_4k, s1.private_4k);
	EXPECT_EQ(s0.make_private, s1.make_private);
	EXPECT_EQ(s0.dm_unmapped_pages, s1.dm_unmapped_pages);
	EXPECT_EQ(s0.leaked_pages, s1.leaked_pages);
	EXPECT_FALSE(assigned(self->fd, page, NULL));
	EXPECT_EQ(pin0, proc_status_kb(0, "VmPin"));
	EXPECT_EQ(held0, foll_pins_held());
	EXPECT_TRUE(store_works(page));
	/* And the same page converts once the region is free again. */
	EXPECT_EQ(0, snp_make_private(self->fd, page, 0x1000, 1, SNP_HOST_LEVEL_4K));
	EXPECT_EQ(0, snp_make_shared(self->fd, page, SNP_HOST_LEVEL_4K));
}

/* A region busy a few times only: the retries hide it. */
TEST_F(inject, transient_busy_is_retried)
{
	char *page = map_pages(1);
	struct snp_host_stats s0, s1;

	ASSERT_NE(NULL, page);
	ASSERT_EQ(0, snp_get_stats(self->fd, &s0));
	ASSERT_EQ(0, arm(POINT("fail_rmpupdate_busy"), 3));
	EXPECT_EQ(0, snp_make_private(self->fd, page, 0x2000, 1, SNP_HOST_LEVEL_4K));
	disarm(POINT("fail_rmpupdate_busy"));
	ASSERT_EQ(0, snp_get_stats(self->fd, &s1));
	EXPECT_EQ(s0.transient_retries + 3, s1.transient_retries);
	EXPECT_TRUE(assigned(self->fd, page, NULL));
	EXPECT_TRUE(store_sigbus(page));
	EXPECT_EQ(0, snp_make_shared(self->fd, page, SNP_HOST_LEVEL_4K));
	EXPECT_TRUE(store_works(page));
}

/*
 * A page that cannot be returned is leaked: EIO, counted, still assigned and
 * out of the write path, listed in debugfs, and pinned after its process is
 * gone (the pin is what keeps it off the allocator).
 */
static void leak_one(struct __test_metadata *_metadata, int fd, const char *point)
{
	struct snp_host_stats s0, s1;
	long long held0 = foll_pins_held();
	char *page = map_pages(1);
	struct rmp_line e;
	__u64 pfn;

	ASSERT_NE(NULL, page);
	ASSERT_EQ(0, snp_get_stats(fd, &s0));
	ASSERT_EQ(0, snp_make_private(fd, page, 0x3000, 1, SNP_HOST_LEVEL_4K));
	pfn = pagemap_pfn(page);
	ASSERT_EQ(0, arm(point, 1));
	EXPECT_EQ(-EIO, snp_make_shared(fd, page, SNP_HOST_LEVEL_4K));
	disarm(point);
	ASSERT_EQ(0, snp_get_stats(fd, &s1));
	EXPECT_EQ(s0.leaked_pages + 1, s1.leaked_pages);
	EXPECT_EQ(held0 + 1, foll_pins_held());
	EXPECT_TRUE(store_sigbus(page));
	if (pfn) {
		EXPECT_EQ(0, dbg_lookup(pfn, true, &e));
		EXPECT_TRUE(e.assigned || !strcmp(point, POINT("fail_directmap_restore")));
	}
	/* Gone from the file and the mm: the pin stays, so the page is never freed. */
	EXPECT_EQ(0, munmap(page, SZ_4K));
	EXPECT_EQ(held0 + 1, foll_pins_held());
}

TEST_F(inject, permanent_rmpupdate_failure_leaks_the_page)
{
	leak_one(_metadata, self->fd, POINT("fail_rmpupdate_shared"));
}

TEST_F(inject, directmap_restore_failure_leaks_the_page)
{
	leak_one(_metadata, self->fd, POINT("fail_directmap_restore"));
}

/*
 * CONVERT_RANGE to shared restores the direct map of neighbouring pages with
 * one call at the end of its batch, but an injected restore failure strikes
 * at its page, in order: the first page is leaked (EIO, done 0), and the
 * pages after it are untouched, still guest pages, which then go back.
 */
TEST_F(inject, range_restore_failure_leaks_the_page_done_names)
{
	const int pages = 8;
	struct snp_host_stats s0, s1;
	long long held0 = foll_pins_held();
	char *buf = map_pages(pages);
	__u64 done = 0;
	int rc, i;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, snp_convert_range(self->fd, buf, pages, 0x20000, 1,
				       SNP_HOST_LEVEL_4K, true, NULL));
	ASSERT_EQ(0, snp_get_stats(self->fd, &s0));
	ASSERT_EQ(0, arm(POINT("fail_directmap_restore"), 1));
	rc = snp_convert_range(self->fd, buf, pages, 0x20000, 1, SNP_HOST_LEVEL_4K,
			       false, &done);
	disarm(POINT("fail_directmap_restore"));
	ASSERT_EQ(0, snp_get_stats(self->fd, &s1));
	EXPECT_EQ(-EIO, rc);
	EXPECT_EQ(0ULL, done);
	EXPECT_EQ(s0.leaked_pages + 1, s1.leaked_pages);
	/* A leaked page counts as leaked, not private; the others are private. */
	EXPECT_EQ(s0.private_4k - 1, s1.private_4k);
	EXPECT_TRUE(store_sigbus(buf));
	for (i = 1; i < pages; i++) {
		EXPECT_TRUE(assigned(self->fd, buf + i * SZ_4K, NULL)) TH_LOG("page %d", i);
		EXPECT_EQ(0, snp_make_shared(self->fd, buf + i * SZ_4K, SNP_HOST_LEVEL_4K));
		EXPECT_TRUE(store_works(buf + i * SZ_4K)) TH_LOG("page %d", i);
	}
	/* The leaked page keeps its pin. */
	EXPECT_EQ(held0 + 1, foll_pins_held());
}

TEST_F(inject, busy_psmash_gives_ebusy_and_keeps_the_2m_page)
{
	char *base;
	__u8 level = 0;

	if (!thp_allowed())
		SKIP(return, "no THP");
	base = map_anon(SZ_2M, SZ_2M, MADV_HUGEPAGE);
	ASSERT_NE(NULL, base);
	if (smaps_anon_huge_kb(base) != 2048)
		SKIP(return, "no THP backs the mapping");
	ASSERT_EQ(0, snp_make_private(self->fd, base, 0x200000, 1, SNP_HOST_LEVEL_2M));
	ASSERT_EQ(0, arm(POINT("fail_psmash_busy"), -1));
	EXPECT_EQ(-EBUSY, snp_psmash(self->fd, base));
	disarm(POINT("fail_psmash_busy"));
	EXPECT_TRUE(assigned(self->fd, base + SZ_4K, &level));
	EXPECT_EQ(SNP_HOST_LEVEL_2M, level);
	EXPECT_EQ(0, snp_make_shared(self->fd, base, SNP_HOST_LEVEL_2M));
	EXPECT_FALSE(assigned(self->fd, base, NULL));
}

/*
 * Makes the allocators fail for this task through fail-nth, quietly (their
 * verbose 2 would print a stack trace per failure into the kernel log).
 */
static int allocators_fail_nth(void)
{
	if (write_str(FAILSLAB "/ignore-gfp-wait", "N") ||
	    write_str(FAILSLAB "/verbose", "0") ||
	    write_str(FAIL_PAGE_ALLOC "/ignore-gfp-wait", "N") ||
	    write_str(FAIL_PAGE_ALLOC "/verbose", "0") ||
	    write_str(FAIL_PAGE_ALLOC "/min-order", "0"))
		return -1;
	return 0;
}

/*
 * /proc/thread-self/fail-nth, opened once: opening it between the arming and
 * the conversion would be a faultable call itself.
 */
static int set_fail_nth(int fd, int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d", n);

	return pwrite(fd, buf, len, 0) == len ? 0 : -1;
}

/* What is left of fail-nth: 0 once the failure was injected. */
static long get_fail_nth(int fd)
{
	char buf[16] = "";

	if (pread(fd, buf, sizeof(buf) - 1, 0) <= 0)
		return -1;
	return strtol(buf, NULL, 10);
}

enum op { OP_PRIVATE, OP_RANGE, OP_SHARED, OP_RANGE_SHARED };

/*
 * For n = 1, 2, ...: the n-th faultable call of @op fails.  Each run must
 * succeed or fail with ENOMEM and, when it failed, leave every page it did
 * not convert as it was: for the page ioctls all of them, for CONVERT_RANGE
 * pages [done, npages) (pages [0, done) were converted, as the ABI says); it
 * ends when @op makes fewer than n calls.
 */
static void every_site(struct __test_metadata *_metadata, int fd, enum op op)
{
	const int pages = 4;
	char *buf = map_pages(pages);
	int n, failed = 0, i, nth = open("/proc/thread-self/fail-nth", O_RDWR);
	bool to_private = op == OP_PRIVATE || op == OP_RANGE;

	ASSERT_NE(NULL, buf);
	if (nth < 0)
		SKIP(return, "no /proc/thread-self/fail-nth (CONFIG_FAULT_INJECTION off)");
	ASSERT_EQ(0, allocators_fail_nth());
	for (n = 1; n < 400; n++) {
		struct snp_host_stats s0, s1;
		long long pin0, held0;
		long long left;
		__u64 done = 0;
		int rc;

		if (!to_private)
			ASSERT_EQ(0, snp_convert_range(fd, buf, pages, 0x10000, 1,
						       SNP_HOST_LEVEL_4K, true, NULL));
		ASSERT_EQ(0, snp_get_stats(fd, &s0));
		pin0 = proc_status_kb(0, "VmPin");
		held0 = foll_pins_held();
		ASSERT_EQ(0, set_fail_nth(nth, n));
		switch (op) {
		case OP_PRIVATE:
			rc = snp_make_private(fd, buf, 0x10000, 1, SNP_HOST_LEVEL_4K);
			break;
		case OP_SHARED:
			rc = snp_make_shared(fd, buf, SNP_HOST_LEVEL_4K);
			break;
		default:
			rc = snp_convert_range(fd, buf, pages, 0x10000, 1,
					       SNP_HOST_LEVEL_4K, to_private, &done);
			break;
		}
		left = get_fail_nth(nth);
		set_fail_nth(nth, 0);
		if (rc) {
			long long d = to_private ? (long long)done : -(long long)done;

			failed++;
			EXPECT_EQ(-ENOMEM, rc) TH_LOG("n=%d: errno %d", n, -rc);
			ASSERT_EQ(0, snp_get_stats(fd, &s1));
			EXPECT_EQ((long long)s0.private_4k + d, (long long)s1.private_4k)
				TH_LOG("n=%d done=%llu", n, (unsigned long long)done);
			EXPECT_EQ(s0.leaked_pages, s1.leaked_pages) TH_LOG("n=%d", n);
			EXPECT_EQ((long long)s0.dm_unmapped_pages + d,
				  (long long)s1.dm_unmapped_pages) TH_LOG("n=%d", n);
			EXPECT_EQ(pin0 + d * 4, proc_status_kb(0, "VmPin")) TH_LOG("n=%d", n);
			EXPECT_EQ(held0 + d, foll_pins_held()) TH_LOG("n=%d", n);
			for (i = 0; i < pages; i++) {
				bool converted = (__u64)i < done;

				EXPECT_EQ(to_private == converted,
					  assigned(fd, buf + i * SZ_4K, NULL))
					TH_LOG("n=%d page %d", n, i);
			}
		}
		/* Back to all shared for the next n. */
		for (i = 0; i < pages; i++) {
			char *page = buf + i * SZ_4K;

			if (assigned(fd, page, NULL))
				ASSERT_EQ(0, snp_make_shared(fd, page, SNP_HOST_LEVEL_4K));
		}
		if (left > 0)
			break;	/* fewer than n faultable calls: every site was hit */
	}
	close(nth);
	TH_LOG("%d faultable calls reached, %d conversions failed", n - 1, failed);
	EXPECT_LT(n, 400);
	EXPECT_TRUE(store_works(buf));
}

TEST_F(inject, allocation_failures_make_private)
{
	every_site(_metadata, self->fd, OP_PRIVATE);
}

TEST_F(inject, allocation_failures_convert_range_to_private)
{
	every_site(_metadata, self->fd, OP_RANGE);
}

TEST_F(inject, allocation_failures_make_shared)
{
	every_site(_metadata, self->fd, OP_SHARED);
}

TEST_F(inject, allocation_failures_convert_range_to_shared)
{
	every_site(_metadata, self->fd, OP_RANGE_SHARED);
}

TEST_HARNESS_MAIN
