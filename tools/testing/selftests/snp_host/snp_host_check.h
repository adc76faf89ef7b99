/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Checks shared by the snp_host selftests.  Each compares what the module
 * says (LOOKUP, GET_STATS, the debugfs views) with what the test expects and
 * with an interface the module does not control (pagemap), and reports
 * through the kselftest harness, so this header comes after
 * kselftest_harness.h; the harness-free readers are in snp_host_util.h.
 */
#ifndef SNP_HOST_CHECK_H
#define SNP_HOST_CHECK_H

#include "snp_host_util.h"

#define LOG_BUDGET		3	/* mismatches logged per check */
#define SNAP_PAGES		8

/* What LOOKUP (and the debugfs views) should say about a page. */
struct want {
	__u8 assigned;
	__u8 level;
	__u32 asid;
	__u64 gpa;
};

static const struct want unassigned __maybe_unused;

/* What the checking helpers need of a test: its file, and whether debugfs is there. */
struct env {
	int fd;
	bool debugfs;
};

/*
 * LOOKUPs @hva through @fd and compares the answer with @w, with the PFN
 * /proc/self/pagemap gives (the same before and after: LOOKUP must not
 * change the mapping), and with "never immutable, never validated" (a fresh
 * assignment clears the validated bit).  Returns 1 on a mismatch, logging
 * it while @budget lasts.
 */
static inline int lookup_bad(struct __test_metadata *_metadata, int fd, void *hva,
			     const struct want *w, int *budget)
{
	__u64 pfn = pagemap_pfn(hva), after;
	struct snp_host_page p;
	int ret;

	ret = snp_lookup(fd, hva, &p);
	after = pagemap_pfn(hva);
	if (!ret && pfn && after == pfn && p.pfn == pfn &&
	    p.assigned == w->assigned &&
	    p.level == w->level && p.asid == w->asid && p.gpa == w->gpa &&
	    !p.immutable && !p.validated)
		return 0;
	if ((*budget)-- > 0) {
		TH_LOG("LOOKUP %p: %s, pfn 0x%llx, pagemap 0x%llx then 0x%llx",
		       hva, ret ? strerror(-ret) : "ok", p.pfn, pfn, after);
		TH_LOG("  got  assigned %u level %u asid %u gpa 0x%llx imm %u val %u",
		       p.assigned, p.level, p.asid, p.gpa, p.immutable,
		       p.validated);
		TH_LOG("  want assigned %u level %u asid %u gpa 0x%llx imm 0 val 0",
		       w->assigned, w->level, w->asid, w->gpa);
	}
	return 1;
}

/* LOOKUPs @n consecutive 4K pages; page i should match @w with gpa + i * @step. */
static inline int lookup_range_bad(struct __test_metadata *_metadata, int fd,
				   char *hva, int n, const struct want *w, __u64 step)
{
	int i, bad = 0, budget = LOG_BUDGET;
	struct want wi = *w;

	for (i = 0; i < n; i++) {
		wi.gpa = w->gpa + i * step;
		bad += lookup_bad(_metadata, fd, hva + i * SZ_4K, &wi, &budget);
	}
	return bad;
}

/*
 * Compares what debugfs rmp lists for @pfn with @w: nothing for an
 * unassigned page, exactly one line with the same attributes otherwise.
 */
static inline int rmp_bad(struct __test_metadata *_metadata,
			  const struct rmp_table *t, __u64 pfn, const struct want *w,
			  int *budget)
{
	bool want_2m = w->level == SNP_HOST_LEVEL_2M;
	struct rmp_line e;
	int n = rmp_table_find(t, pfn, &e);

	if (!w->assigned && !n)
		return 0;
	if (w->assigned && n == 1 && e.assigned && e.asid == w->asid &&
	    e.gpa == w->gpa && e.is_2m == want_2m && !e.immutable &&
	    !e.validated)
		return 0;
	if ((*budget)-- > 0) {
		TH_LOG("debugfs rmp: %d line(s) for pfn 0x%llx, want %d", n, pfn,
		       w->assigned);
		TH_LOG("  got  %s assigned=%u asid=%u gpa=0x%llx imm=%u val=%u",
		       e.is_2m ? "2M" : "4K", e.assigned, e.asid, e.gpa,
		       e.immutable, e.validated);
		TH_LOG("  want %s assigned=%u asid=%u gpa=0x%llx imm=0 val=0",
		       want_2m ? "2M" : "4K", w->assigned, w->asid, w->gpa);
	}
	return 1;
}

/* Checks debugfs rmp for @n pages of @pfns against @w, gpa + i * @step. */
static inline void expect_rmp(struct __test_metadata *_metadata,
			      const struct env *env, const __u64 *pfns, int n,
			      const struct want *w, __u64 step)
{
	int i, bad = 0, budget = LOG_BUDGET;
	struct want wi = *w;
	struct rmp_table t;

	if (!env->debugfs)
		return;
	ASSERT_EQ(0, rmp_table_read(&t));
	EXPECT_EQ(0, t.bad) TH_LOG("debugfs rmp has lines of an unknown format");
	for (i = 0; i < n; i++) {
		wi.gpa = w->gpa + i * step;
		bad += rmp_bad(_metadata, &t, pfns[i], &wi, &budget);
	}
	EXPECT_EQ(0, bad);
	rmp_table_free(&t);
}

/* The same for @n consecutive PFNs from @first. */
static inline void expect_rmp_range(struct __test_metadata *_metadata,
				    const struct env *env, __u64 first, int n,
				    const struct want *w, __u64 step)
{
	__u64 *pfns = calloc(n, sizeof(*pfns));
	int i;

	ASSERT_NE(NULL, pfns);
	for (i = 0; i < n; i++)
		pfns[i] = first + i;
	expect_rmp(_metadata, env, pfns, n, w, step);
	free(pfns);
}

/* Checks debugfs lookup of @pfn, written as hex or decimal, against @w. */
static inline void expect_dbg_lookup(struct __test_metadata *_metadata,
				     const struct env *env, __u64 pfn,
				     const struct want *w, bool hex)
{
	struct rmp_line e;

	if (!env->debugfs)
		return;
	ASSERT_EQ(0, dbg_lookup(pfn, hex, &e))
		TH_LOG("debugfs lookup of pfn 0x%llx gave no parsable line", pfn);
	EXPECT_EQ(pfn, e.pfn);
	EXPECT_EQ(w->assigned, e.assigned) TH_LOG("pfn 0x%llx", pfn);
	EXPECT_EQ(w->asid, e.asid) TH_LOG("pfn 0x%llx", pfn);
	EXPECT_EQ(w->gpa, e.gpa) TH_LOG("pfn 0x%llx", pfn);
	EXPECT_EQ(w->level == SNP_HOST_LEVEL_2M, e.is_2m) TH_LOG("pfn 0x%llx", pfn);
	EXPECT_EQ(0U, e.immutable);
	EXPECT_EQ(0U, e.validated);
}

static inline void read_stats(struct __test_metadata *_metadata, int fd,
			      struct snp_host_stats *st)
{
	ASSERT_EQ(0, snp_get_stats(fd, st));
}

/*
 * Compares the change from @a to @b of the gauges and of the operation
 * counters with what the test did; nothing may have failed or leaked.
 */
static inline void expect_delta(struct __test_metadata *_metadata,
				const struct snp_host_stats *a,
				const struct snp_host_stats *b, long long p4k,
				long long p2m, long long mk_priv, long long mk_shared,
				long long psmash)
{
	EXPECT_EQ(p4k, (long long)(b->private_4k - a->private_4k));
	EXPECT_EQ(p2m, (long long)(b->private_2m - a->private_2m));
	EXPECT_EQ(mk_priv, (long long)(b->make_private - a->make_private));
	EXPECT_EQ(mk_shared, (long long)(b->make_shared - a->make_shared));
	EXPECT_EQ(psmash, (long long)(b->psmash - a->psmash));
	EXPECT_EQ(0LL, (long long)(b->failures - a->failures));
	EXPECT_EQ(0LL, (long long)(b->leaked_pages - a->leaked_pages));
}

/* Everything a refused call must leave as it was. */
struct snap {
	int n;
	int rc[SNAP_PAGES];
	struct snp_host_page page[SNAP_PAGES];
	int stats_rc;
	struct snp_host_stats stats;
	char *rmp;
};

static inline void snap_take(const struct env *env, struct snap *s,
			     void *const *hvas, int n)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->n = n;
	for (i = 0; i < n; i++)
		s->rc[i] = snp_lookup(env->fd, hvas[i], &s->page[i]);
	s->stats_rc = snp_get_stats(env->fd, &s->stats);
	if (env->debugfs)
		s->rmp = read_text(SNP_DEBUGFS_RMP);
}

static inline void log_page(struct __test_metadata *_metadata, const char *what,
			    const char *when, const struct snp_host_page *p)
{
	TH_LOG("%s: %s: assigned %u asid %u gpa 0x%llx level %u pfn 0x%llx",
	       what, when, p->assigned, p->asid, p->gpa, p->level, p->pfn);
}

/* Logs each counter that differs between @x and @y; returns how many do. */
static inline int stats_diff(struct __test_metadata *_metadata,
			     const struct snp_host_stats *x,
			     const struct snp_host_stats *y, const char *what)
{
	static const char *const stat_names[] = {
		"private_4k", "private_2m", "make_private", "make_shared",
		"psmash", "transient_retries", "failures", "leaked_pages",
		"dm_splits_2m", "dm_splits_1g", "dm_merges_2m", "dm_merges_1g",
		"dm_unmapped_pages", "tlb_flushes",
	};
	const __u64 *a = (const __u64 *)x, *b = (const __u64 *)y;
	size_t i, n = sizeof(*x) / sizeof(__u64);
	int diff = 0;

	for (i = 0; i < n; i++) {
		if (a[i] == b[i])
			continue;
		diff++;
		TH_LOG("%s: %s %llu -> %llu", what,
		       i < ARRAY_SIZE(stat_names) ? stat_names[i] : "reserved",
		       a[i], b[i]);
	}
	return diff;
}

static inline void read_fault_stats(struct __test_metadata *_metadata, int fd,
				    struct snp_host_fault_stats *fs)
{
	int ret = snp_get_fault_stats(fd, fs);

	ASSERT_EQ(0, ret) TH_LOG("GET_FAULT_STATS: %s", strerror(-ret));
}

/* Logs each fault counter that changed from @x to @y; returns how many did. */
static inline int fault_stats_diff(struct __test_metadata *_metadata,
				   const struct snp_host_fault_stats *x,
				   const struct snp_host_fault_stats *y,
				   const char *what)
{
	static const char *const names[] = {
		"user_faults", "thp_splits", "sigbus", "no_progress",
		"uaccess_refused", "gup_refused", "kernel_faults",
	};
	const __u64 *a = (const __u64 *)x, *b = (const __u64 *)y;
	size_t i, n = sizeof(*x) / sizeof(__u64);
	int diff = 0;

	for (i = 0; i < n; i++) {
		if (a[i] == b[i])
			continue;
		diff++;
		TH_LOG("%s: %s %llu -> %llu", what,
		       i < ARRAY_SIZE(names) ? names[i] : "reserved", a[i], b[i]);
	}
	return diff;
}

static inline void expect_same(struct __test_metadata *_metadata,
			       const struct snap *a, const struct snap *b,
			       const char *what)
{
	int i;

	for (i = 0; i < a->n; i++) {
		const struct snp_host_page *p = &a->page[i], *q = &b->page[i];

		EXPECT_EQ(a->rc[i], b->rc[i]) TH_LOG("%s: LOOKUP %d", what, i);
		if (a->rc[i] || b->rc[i])
			continue;
		if (memcmp(p, q, sizeof(*p))) {
			log_page(_metadata, what, "before", p);
			log_page(_metadata, what, "after", q);
		}
		EXPECT_EQ(0, memcmp(p, q, sizeof(*p)));
	}
	EXPECT_EQ(0, a->stats_rc);
	EXPECT_EQ(0, b->stats_rc);
	EXPECT_EQ(0, stats_diff(_metadata, &a->stats, &b->stats, what));
	EXPECT_EQ(!a->rmp, !b->rmp);
	if (a->rmp && b->rmp)
		EXPECT_EQ(0, strcmp(a->rmp, b->rmp))
			TH_LOG("%s: debugfs rmp changed", what);
}

/*
 * Issues @cmd(@arg) on @fd, expects it to fail with @err (or @alt when not
 * 0), and that LOOKUP of the @n @hvas, GET_STATS and debugfs rmp are the same
 * before and after.
 */
static inline void expect_refused(struct __test_metadata *_metadata,
				  const struct env *env, int fd, unsigned long cmd,
				  void *arg, int err, int alt, void *const *hvas,
				  int n, const char *what)
{
	struct snap before, after;
	int ret;

	ASSERT_GE(SNAP_PAGES, n);
	snap_take(env, &before, hvas, n);
	ret = snp_ioctl(fd, cmd, arg);
	EXPECT_TRUE(ret == -err || (alt && ret == -alt))
		TH_LOG("%s: want %s%s%s, got %s", what, strerror(err),
		       alt ? " or " : "", alt ? strerror(alt) : "",
		       ret ? strerror(-ret) : "success");
	snap_take(env, &after, hvas, n);
	expect_same(_metadata, &before, &after, what);
	free(before.rmp);
	free(after.rmp);
}

#endif /* SNP_HOST_CHECK_H */
