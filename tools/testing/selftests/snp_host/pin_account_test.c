// SPDX-License-Identifier: GPL-2.0
/*
 * Pages snp_host holds private are accounted as pinned memory of the
 * process that made them private, the way other long-term pinners (RDMA,
 * io_uring, VFIO) account theirs.
 *
 * - VmPin of /proc/self/status grows by 4 kB for each 4K page made private
 *   (2048 kB for a 2M page), whichever ioctl did it, stays through PSMASH,
 *   and goes back to where it was after MAKE_SHARED and after close().
 * - Without CAP_IPC_LOCK, RLIMIT_MEMLOCK bounds it: a conversion that would
 *   go beyond the limit fails with ENOMEM and changes nothing (a
 *   CONVERT_RANGE charges each batch of up to 4096 pages before pinning it,
 *   so a range within one batch that does not fit converts nothing: done 0).
 * - With CAP_IPC_LOCK the limit does not apply, as for mlock().
 *
 * Capabilities are dropped with capset() on the raw syscall; the harness
 * runs each test in a process of its own, so nothing leaks into the next.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "kselftest_harness.h"
#include "snp_host_check.h"

#define LIMIT		(64UL << 10)	/* RLIMIT_MEMLOCK for the tests: 16 pages */
#define LIMIT_PAGES	(LIMIT / SZ_4K)
#define NPAGES		64

static long long vm_pin(void)
{
	return proc_status_kb(0, "VmPin");
}

FIXTURE(acct)
{
	struct env env;
	long long vm_pin0;
	long long pins0;
	char *p;
	struct thp t;
	bool have_thp;
};

FIXTURE_SETUP(acct)
{
	self->env.fd = -1;
	if (geteuid())
		SKIP(return, "needs root (the device, pagemap)");
	if (access(SNP_MODULE_DIR, F_OK))
		SKIP(return, "snp_host.ko is not loaded");
	self->vm_pin0 = vm_pin();
	ASSERT_LE(0, self->vm_pin0) TH_LOG("no VmPin in /proc/self/status");
	self->pins0 = foll_pins_held();
	self->env.fd = snp_open();
	ASSERT_LE(0, self->env.fd) TH_LOG("open %s: %s", SNP_DEV, strerror(-self->env.fd));
	self->env.debugfs = debugfs_mounted() && !access(SNP_DEBUGFS, F_OK);
	self->p = map_pages(NPAGES);
	ASSERT_NE(NULL, self->p);
	self->have_thp = !thp_alloc(&self->t);
}

FIXTURE_TEARDOWN(acct)
{
	/* Closing returns every page this file made private. */
	if (self->env.fd >= 0)
		close(self->env.fd);
	if (self->have_thp)
		thp_free(&self->t);
}

static void expect_vm_pin(struct __test_metadata *_metadata,
			  long long base, long long pages, const char *when)
{
	long long got = vm_pin();

	EXPECT_EQ(base + pages * 4, got)
		TH_LOG("%s: VmPin %lld kB, want %lld kB (%lld pages over %lld kB)",
		       when, got, base + pages * 4, pages, base);
}

static int set_memlock(rlim_t bytes)
{
	struct rlimit rl = { .rlim_cur = bytes, .rlim_max = bytes };

	return setrlimit(RLIMIT_MEMLOCK, &rl) ? -errno : 0;
}

TEST_F(acct, vm_pin_follows_private_pages)
{
	const int fd = self->env.fd;
	long long base = self->vm_pin0, n = 0;
	char *p = self->p;
	int i;

	for (i = 0; i < 16; i++)
		ASSERT_EQ(0, snp_make_private(fd, p + i * SZ_4K,
					      0x100000 + i * SZ_4K, 1, 0));
	n += 16;
	expect_vm_pin(_metadata, base, n, "16 pages by MAKE_PRIVATE");
	ASSERT_EQ(0, snp_convert_range(fd, p + 16 * SZ_4K, NPAGES - 16,
				       0x200000, 1, SNP_HOST_LEVEL_4K, true,
				       NULL));
	n += NPAGES - 16;
	expect_vm_pin(_metadata, base, n, "48 more by CONVERT_RANGE");
	EXPECT_EQ(self->pins0 + n, foll_pins_held());

	if (self->have_thp) {
		ASSERT_EQ(0, snp_make_private(fd, self->t.base, 0x400000, 1,
					      SNP_HOST_LEVEL_2M));
		n += PAGES_PER_2M;
		expect_vm_pin(_metadata, base, n, "a 2M page");
		ASSERT_EQ(0, snp_psmash(fd, self->t.base));
		expect_vm_pin(_metadata, base, n, "after PSMASH");
	} else {
		TH_LOG("no THP: 4K pages only");
	}

	for (i = 0; i < 8; i++)
		ASSERT_EQ(0, snp_make_shared(fd, p + i * SZ_4K, 0));
	n -= 8;
	expect_vm_pin(_metadata, base, n, "8 pages by MAKE_SHARED");
	ASSERT_EQ(0, snp_convert_range(fd, p + 8 * SZ_4K, 24, 0, 0,
				       SNP_HOST_LEVEL_4K, false, NULL));
	n -= 24;
	expect_vm_pin(_metadata, base, n, "24 pages by CONVERT_RANGE");

	/* The rest goes back with the file. */
	ASSERT_EQ(0, close(self->env.fd));
	self->env.fd = -1;
	expect_vm_pin(_metadata, base, 0, "after close");
	EXPECT_EQ(self->pins0, foll_pins_held());
}

TEST_F(acct, memlock_limit_without_cap_ipc_lock)
{
	const struct env *env = &self->env;
	const struct want w = { .assigned = 1, .asid = 2, .gpa = 0x800000 };
	long long base = self->vm_pin0, locked;
	struct snap before, after;
	void *hvas[3];
	char *p = self->p;
	__u64 done = 0;
	int i, ret, k;

	ASSERT_TRUE(has_cap(CAP_IPC_LOCK)) TH_LOG("premise: root has CAP_IPC_LOCK");
	ASSERT_EQ(0, drop_cap(CAP_IPC_LOCK));
	ASSERT_FALSE(has_cap(CAP_IPC_LOCK));
	ASSERT_EQ(0, set_memlock(LIMIT));
	locked = proc_status_kb(0, "VmLck");
	if (base || locked > 0)
		TH_LOG("VmPin %lld kB, VmLck %lld kB already count against the limit",
		       base, locked);

	/* A range beyond the limit converts only what fits, and says so. */
	ret = snp_convert_range(env->fd, p, 2 * LIMIT_PAGES, w.gpa, w.asid,
				SNP_HOST_LEVEL_4K, true, &done);
	EXPECT_EQ(-ENOMEM, ret)
		TH_LOG("CONVERT_RANGE of %lu pages over a limit of %lu: %s",
		       2 * LIMIT_PAGES, LIMIT_PAGES, ret ? strerror(-ret) : "success");
	/* One batch, charged whole before anything is pinned: nothing fits. */
	EXPECT_EQ(0ULL, done);
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, p, (int)done, &w,
				      SZ_4K));
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, p + done * SZ_4K,
				      2 * LIMIT_PAGES - done, &unassigned, 0));
	expect_vm_pin(_metadata, base, done, "after the refused range");
	EXPECT_EQ(self->pins0 + (long long)done, foll_pins_held());
	if (done)
		ASSERT_EQ(0, snp_convert_range(env->fd, p, done, 0, 0,
					       SNP_HOST_LEVEL_4K, false, NULL));
	expect_vm_pin(_metadata, base, 0, "the range returned");

	/* One page at a time: the first beyond the limit is refused. */
	for (k = 0; k < NPAGES; k++) {
		ret = snp_make_private(env->fd, p + k * SZ_4K,
				       w.gpa + k * SZ_4K, w.asid, 0);
		if (ret)
			break;
	}
	EXPECT_EQ(-ENOMEM, ret)
		TH_LOG("MAKE_PRIVATE of page %d over a limit of %lu pages: %s",
		       k, LIMIT_PAGES, ret ? strerror(-ret) : "success");
	EXPECT_GE((int)LIMIT_PAGES, k);
	EXPECT_LT(0, k) TH_LOG("not even one page fits in %lu kB", LIMIT >> 10);
	ASSERT_GT(NPAGES, k);
	expect_vm_pin(_metadata, base, k, "at the limit");

	/* Refused again, it changes nothing at all. */
	hvas[0] = p + k * SZ_4K;
	hvas[1] = p;
	hvas[2] = p + (k ? k - 1 : 0) * SZ_4K;
	snap_take(env, &before, hvas, 3);
	ret = snp_make_private(env->fd, p + k * SZ_4K, w.gpa + k * SZ_4K,
			       w.asid, 0);
	EXPECT_EQ(-ENOMEM, ret);
	ret = snp_convert_range(env->fd, p + k * SZ_4K, NPAGES - k,
				w.gpa + k * SZ_4K, w.asid, SNP_HOST_LEVEL_4K,
				true, &done);
	EXPECT_EQ(-ENOMEM, ret);
	EXPECT_EQ(0ULL, done);
	if (self->have_thp) {
		ret = snp_make_private(env->fd, self->t.base, 0x1000000, w.asid,
				       SNP_HOST_LEVEL_2M);
		EXPECT_EQ(-ENOMEM, ret) TH_LOG("a 2M page over the limit: %s",
					       ret ? strerror(-ret) : "success");
	}
	snap_take(env, &after, hvas, 3);
	expect_same(_metadata, &before, &after, "conversions over the limit");
	free(before.rmp);
	free(after.rmp);
	expect_vm_pin(_metadata, base, k, "after the refusals");
	EXPECT_EQ(self->pins0 + k, foll_pins_held());

	for (i = 0; i < k; i++)
		EXPECT_EQ(0, snp_make_shared(env->fd, p + i * SZ_4K, 0));
	expect_vm_pin(_metadata, base, 0, "everything shared");
	EXPECT_EQ(self->pins0, foll_pins_held());
}

TEST_F(acct, cap_ipc_lock_bypasses_the_limit)
{
	const int fd = self->env.fd;
	long long base = self->vm_pin0, n = NPAGES;

	ASSERT_TRUE(has_cap(CAP_IPC_LOCK)) TH_LOG("premise: root has CAP_IPC_LOCK");
	ASSERT_EQ(0, set_memlock(LIMIT));
	ASSERT_EQ(0, snp_convert_range(fd, self->p, NPAGES, 0x100000, 1,
				       SNP_HOST_LEVEL_4K, true, NULL))
		TH_LOG("%d pages over a limit of %lu with CAP_IPC_LOCK", NPAGES,
		       LIMIT_PAGES);
	if (self->have_thp) {
		ASSERT_EQ(0, snp_make_private(fd, self->t.base, 0x400000, 1,
					      SNP_HOST_LEVEL_2M));
		n += PAGES_PER_2M;
	}
	/* Still accounted: only the limit is waived. */
	expect_vm_pin(_metadata, base, n, "beyond the limit with CAP_IPC_LOCK");
	ASSERT_EQ(0, snp_convert_range(fd, self->p, NPAGES, 0, 0,
				       SNP_HOST_LEVEL_4K, false, NULL));
	if (self->have_thp)
		ASSERT_EQ(0, snp_make_shared(fd, self->t.base, SNP_HOST_LEVEL_2M));
	expect_vm_pin(_metadata, base, 0, "everything shared");
	EXPECT_EQ(self->pins0, foll_pins_held());
}

TEST_HARNESS_MAIN
