// SPDX-License-Identifier: GPL-2.0
/*
 * The direct map around guest-owned pages (coalesce policy, the default).
 *
 * Every check compares the kernel's own view, DirectMap4k/2M/1G in
 * /proc/meminfo and direct_map_level{2,3}_{splits,collapses} in /proc/vmstat,
 * with what the module says it did, and ends with the direct map exactly as
 * it was before the test.  Whether a region starts as a 2M or 1G mapping is
 * the kernel's business, so the tests accept both and check that the numbers
 * agree; a region the kernel had already split to 4K makes a test skip.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "kselftest_harness.h"
#include "snp_host_util.h"

struct dm_view {
	long long k4, m2, g1;		/* kB mapped at each size */
	long long split2, split3;	/* vmstat events */
	long long merge2, merge3;
};

static void dm_read(struct dm_view *v)
{
	v->k4 = meminfo_read("DirectMap4k");
	v->m2 = meminfo_read("DirectMap2M");
	v->g1 = meminfo_read("DirectMap1G");
	v->split2 = vmstat_read("direct_map_level2_splits");
	v->split3 = vmstat_read("direct_map_level3_splits");
	v->merge2 = vmstat_read("direct_map_level2_collapses");
	v->merge3 = vmstat_read("direct_map_level3_collapses");
}

static bool dm_same_map(const struct dm_view *a, const struct dm_view *b)
{
	return a->k4 == b->k4 && a->m2 == b->m2 && a->g1 == b->g1;
}

FIXTURE(dm) {
	int fd;
	struct dm_view start;
	struct snp_host_stats stats;
};

FIXTURE_SETUP(dm)
{
	struct snp_host_status st;

	self->fd = snp_open();
	if (self->fd < 0)
		SKIP(return, "cannot open " SNP_DEV ": %s", strerror(-self->fd));
	ASSERT_EQ(0, snp_get_status(self->fd, &st));
	if (st.directmap_policy != SNP_HOST_DIRECTMAP_COALESCE)
		SKIP(return, "directmap=coalesce only (policy %u)", st.directmap_policy);
	dm_read(&self->start);
	if (self->start.split2 < 0)
		SKIP(return, "no direct_map_level2_splits in /proc/vmstat");
	ASSERT_EQ(0, snp_get_stats(self->fd, &self->stats));
}

FIXTURE_TEARDOWN(dm)
{
	struct dm_view end;

	if (self->fd < 0)
		return;
	close(self->fd);
	/* Whatever a test did, closing gave everything back: the map is whole again. */
	dm_read(&end);
	EXPECT_TRUE(dm_same_map(&self->start, &end))
		TH_LOG("DirectMap 4k/2M/1G %lld/%lld/%lld kB, was %lld/%lld/%lld",
		       end.k4, end.m2, end.g1, self->start.k4, self->start.m2, self->start.g1);
}

/* Checks that the kernel's view moved exactly as the module says it split. */
static void check_split(struct __test_metadata *_metadata, int fd,
			const struct dm_view *before, const struct snp_host_stats *sb,
			long long want_split2)
{
	struct snp_host_stats sa;
	struct dm_view v;

	dm_read(&v);
	ASSERT_EQ(0, snp_get_stats(fd, &sa));
	/* The kernel counted the splits the module reports, no more. */
	EXPECT_EQ(v.split2 - before->split2, (long long)(sa.dm_splits_2m - sb->dm_splits_2m));
	EXPECT_EQ(v.split3 - before->split3, (long long)(sa.dm_splits_1g - sb->dm_splits_1g));
	EXPECT_EQ(want_split2, v.split2 - before->split2);
	/* Each 2M split moves 2048 kB to 4K; each 1G split moves 1 GiB to 2M. */
	EXPECT_EQ(2048 * want_split2, v.k4 - before->k4);
	EXPECT_EQ(-1048576 * (v.split3 - before->split3), v.g1 - before->g1);
	EXPECT_EQ(before->k4 + before->m2 + before->g1, v.k4 + v.m2 + v.g1);
}

TEST_F(dm, one_4k_page_splits_exactly_one_region)
{
	struct snp_host_stats sb, sa;
	struct dm_view before, after;
	struct thp t;

	ASSERT_EQ(0, thp_alloc(&t));
	dm_read(&before);
	ASSERT_EQ(0, snp_get_stats(self->fd, &sb));
	ASSERT_EQ(0, snp_make_private(self->fd, t.base + 7 * SZ_4K, 0x7000, 1, 0));
	dm_read(&after);
	if (after.split2 == before.split2 && after.k4 == before.k4)
		SKIP(goto out, "the kernel had split this region to 4K already");
	check_split(_metadata, self->fd, &before, &sb, 1);
	ASSERT_EQ(0, snp_get_stats(self->fd, &sa));
	EXPECT_EQ(sb.dm_unmapped_pages + 1, sa.dm_unmapped_pages);
	EXPECT_TRUE(thp_intact(&t)) TH_LOG("the user THP must not be touched");

	/* Back: written again through the direct map, and merged once. */
	ASSERT_EQ(0, snp_make_shared(self->fd, t.base + 7 * SZ_4K, 0));
	dm_read(&after);
	EXPECT_TRUE(dm_same_map(&before, &after));
	EXPECT_EQ(1, after.merge2 - before.merge2);
	EXPECT_EQ(after.split3 - before.split3, after.merge3 - before.merge3);
	ASSERT_EQ(0, snp_get_stats(self->fd, &sa));
	EXPECT_EQ(sb.dm_merges_2m + 1, sa.dm_merges_2m);
	EXPECT_EQ(sb.dm_unmapped_pages, sa.dm_unmapped_pages);
out:
	thp_free(&t);
}

static int convert(int fd, void *hva, __u64 npages, __u8 level, bool to_private,
		   __u64 *done)
{
	struct snp_host_range r;
	int ret;

	memset(&r, 0, sizeof(r));
	r.hva = (unsigned long)hva;
	r.npages = npages;
	r.gpa = 0x40000000;
	r.asid = 1;
	r.level = level;
	r.to_private = to_private;
	ret = snp_ioctl(fd, SNP_HOST_CONVERT_RANGE, &r);
	if (done)
		*done = r.done;
	return ret;
}

TEST_F(dm, all_512_pages_of_a_region_split_it_once)
{
	struct snp_host_stats sb, sa;
	struct dm_view before, after;
	__u64 done = 0;
	struct thp t;

	ASSERT_EQ(0, thp_alloc(&t));
	dm_read(&before);
	ASSERT_EQ(0, snp_get_stats(self->fd, &sb));
	ASSERT_EQ(0, convert(self->fd, t.base, PAGES_PER_2M, 0, true, &done));
	EXPECT_EQ((__u64)PAGES_PER_2M, done);
	dm_read(&after);
	if (after.split2 == before.split2 && after.k4 == before.k4)
		SKIP(goto out, "the kernel had split this region to 4K already");
	check_split(_metadata, self->fd, &before, &sb, 1);
	ASSERT_EQ(0, snp_get_stats(self->fd, &sa));
	EXPECT_EQ(sb.private_4k + PAGES_PER_2M, sa.private_4k);
	/* One flush for the whole range, not one per page. */
	EXPECT_EQ(sb.tlb_flushes + 1, sa.tlb_flushes);

	ASSERT_EQ(0, convert(self->fd, t.base, PAGES_PER_2M, 0, false, &done));
	EXPECT_EQ((__u64)PAGES_PER_2M, done);
	dm_read(&after);
	EXPECT_TRUE(dm_same_map(&before, &after));
	ASSERT_EQ(0, snp_get_stats(self->fd, &sa));
	EXPECT_EQ(sb.private_4k, sa.private_4k);
out:
	thp_free(&t);
}

TEST_F(dm, a_2m_page_splits_no_2m_region)
{
	struct snp_host_stats sb;
	struct dm_view before, after;
	struct thp t;

	ASSERT_EQ(0, thp_alloc(&t));
	dm_read(&before);
	ASSERT_EQ(0, snp_get_stats(self->fd, &sb));
	ASSERT_EQ(0, snp_make_private(self->fd, t.base, 0x200000, 1, 1));
	/* A 1G mapping may be split to 2M; nothing is split to 4K. */
	check_split(_metadata, self->fd, &before, &sb, 0);
	ASSERT_EQ(0, snp_make_shared(self->fd, t.base, 1));
	dm_read(&after);
	EXPECT_TRUE(dm_same_map(&before, &after))
		TH_LOG("DirectMap 4k/2M/1G %lld/%lld/%lld kB, was %lld/%lld/%lld",
		       after.k4, after.m2, after.g1, before.k4, before.m2, before.g1);
	thp_free(&t);
}

/* Returning one 4K page of a protected 2M page (after PSMASH) splits that region once. */
TEST_F(dm, partial_return_after_psmash_is_counted)
{
	struct snp_host_stats sb;
	struct dm_view before;
	struct thp t;

	ASSERT_EQ(0, thp_alloc(&t));
	ASSERT_EQ(0, snp_make_private(self->fd, t.base, 0x200000, 1, 1));
	ASSERT_EQ(0, snp_psmash(self->fd, t.base));
	dm_read(&before);
	ASSERT_EQ(0, snp_get_stats(self->fd, &sb));
	ASSERT_EQ(0, snp_make_shared(self->fd, t.base + 9 * SZ_4K, 0));
	check_split(_metadata, self->fd, &before, &sb, 1);
	/* The other 511 pages go back when the file is closed (teardown checks the map). */
	thp_free(&t);
}

TEST_F(dm, range_stops_at_the_first_busy_page)
{
	struct snp_host_page p;
	__u64 done = 99;
	struct thp t;
	int i;

	ASSERT_EQ(0, thp_alloc(&t));
	ASSERT_EQ(0, snp_make_private(self->fd, t.base + 5 * SZ_4K, 0x9000, 2, 0));
	EXPECT_EQ(-EBUSY, convert(self->fd, t.base, 16, 0, true, &done));
	EXPECT_EQ(5ULL, done);
	for (i = 0; i < 16; i++) {
		p = snp_page(NULL, 0, 0, 0);
		ASSERT_EQ(0, snp_lookup(self->fd, t.base + i * SZ_4K, &p));
		EXPECT_EQ(i <= 5, p.assigned) TH_LOG("page %d", i);
		if (i < 5)
			EXPECT_EQ(0x40000000ULL + i * SZ_4K, p.gpa);
	}
	/* Returning a range stops at the first page this file did not assign. */
	EXPECT_EQ(-ENOENT, convert(self->fd, t.base, 16, 0, false, &done));
	EXPECT_EQ(6ULL, done);
	thp_free(&t);
}

TEST_F(dm, range_arguments_are_checked)
{
	struct snp_host_range r;
	struct snp_host_stats sb, sa;
	struct thp t;

	ASSERT_EQ(0, thp_alloc(&t));
	ASSERT_EQ(0, snp_get_stats(self->fd, &sb));
	memset(&r, 0, sizeof(r));
	r.hva = (unsigned long)t.base;
	r.npages = 1;
	r.asid = 1;
	r.to_private = 1;
	r.reserved0 = 1;
	EXPECT_EQ(-EINVAL, snp_ioctl(self->fd, SNP_HOST_CONVERT_RANGE, &r));
	r.reserved0 = 0;
	r.reserved[1] = 1;
	EXPECT_EQ(-EINVAL, snp_ioctl(self->fd, SNP_HOST_CONVERT_RANGE, &r));
	r.reserved[1] = 0;
	r.npages = 0;
	EXPECT_EQ(-EINVAL, snp_ioctl(self->fd, SNP_HOST_CONVERT_RANGE, &r));
	r.npages = 1;
	r.to_private = 2;
	EXPECT_EQ(-EINVAL, snp_ioctl(self->fd, SNP_HOST_CONVERT_RANGE, &r));
	r.to_private = 1;
	r.level = 1;
	r.hva += SZ_4K;
	EXPECT_EQ(-EINVAL, snp_ioctl(self->fd, SNP_HOST_CONVERT_RANGE, &r));
	r.hva -= SZ_4K;
	r.gpa = 0x1000;	/* not 2M-aligned */
	EXPECT_EQ(-EINVAL, snp_ioctl(self->fd, SNP_HOST_CONVERT_RANGE, &r));
	r.gpa = 0;
	r.asid = 0;
	EXPECT_EQ(-EINVAL, snp_ioctl(self->fd, SNP_HOST_CONVERT_RANGE, &r));
	r.asid = 1;
	r.npages = ~0ULL >> 12;	/* runs off the address space */
	EXPECT_EQ(-EINVAL, snp_ioctl(self->fd, SNP_HOST_CONVERT_RANGE, &r));
	EXPECT_EQ(-EFAULT, snp_ioctl(self->fd, SNP_HOST_CONVERT_RANGE, (void *)8));
	ASSERT_EQ(0, snp_get_stats(self->fd, &sa));
	EXPECT_EQ(0, memcmp(&sb, &sa, sizeof(sa))) TH_LOG("a refused call changed something");
	thp_free(&t);
}

/*
 * Threads convert disjoint pages of the same two 2M regions in a seeded
 * random order: the per-region accounting must never merge a region that
 * still holds a guest page, nor lose a merge.
 */
struct worker {
	char *base;	/* this worker's pages: base + i * stride */
	int npages, stride, fd, errors;
	unsigned int seed;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	bool priv[64] = { false };
	int round, i;

	for (round = 0; round < 400; round++) {
		i = rand_r(&w->seed) % w->npages;
		char *hva = w->base + (size_t)i * w->stride;

		if (priv[i]) {
			if (snp_make_shared(w->fd, hva, 0))
				w->errors++;
		} else if (snp_make_private(w->fd, hva, (__u64)(hva - w->base) + 0x100000, 1, 0)) {
			w->errors++;
		}
		priv[i] = !priv[i];
	}
	for (i = 0; i < w->npages; i++)
		if (priv[i] && snp_make_shared(w->fd, w->base + (size_t)i * w->stride, 0))
			w->errors++;
	return NULL;
}

TEST_F(dm, threads_interleaving_end_where_they_started)
{
	struct worker w[4];
	pthread_t tid[4];
	struct snp_host_stats sa;
	struct dm_view after;
	struct thp t[2];
	int i;

	ASSERT_EQ(0, thp_alloc(&t[0]));
	ASSERT_EQ(0, thp_alloc(&t[1]));
	for (i = 0; i < 4; i++) {
		/* Workers interleave within each region: pages i, i + 4, i + 8, ... */
		w[i] = (struct worker){ .base = t[i / 2].base + (i % 2) * SZ_4K,
					.npages = 64, .stride = 2 * SZ_4K,
					.fd = snp_open(), .seed = 1234 + i };
		ASSERT_GE(w[i].fd, 0);
		ASSERT_EQ(0, pthread_create(&tid[i], NULL, work, &w[i]));
	}
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, pthread_join(tid[i], NULL));
		EXPECT_EQ(0, w[i].errors) TH_LOG("worker %d", i);
		close(w[i].fd);
	}
	dm_read(&after);
	EXPECT_TRUE(dm_same_map(&self->start, &after));
	ASSERT_EQ(0, snp_get_stats(self->fd, &sa));
	EXPECT_EQ(self->stats.private_4k, sa.private_4k);
	EXPECT_EQ(self->stats.dm_unmapped_pages, sa.dm_unmapped_pages);
	EXPECT_EQ(sa.dm_splits_2m - self->stats.dm_splits_2m,
		  sa.dm_merges_2m - self->stats.dm_merges_2m);
	thp_free(&t[0]);
	thp_free(&t[1]);
}

TEST_HARNESS_MAIN
