// SPDX-License-Identifier: GPL-2.0
/*
 * The workload of `make bench`, run inside the test VM once per direct-map
 * policy (snp_host.ko loaded with directmap=split, perpage or coalesce).
 *
 * A pool of THP-backed anonymous memory (1 GiB by default, so 512 2M
 * regions) goes through four seeded phases; the same seed picks the same
 * pages under every policy:
 *
 *   1. one random 4K page of each 2M region made private, except in the
 *      regions kept for phase 3 (every eighth region, picked at random);
 *   2. random runs of 4K pages (1..32 pages inside one region) made private
 *      until 25% of the pool's pages are.  This is done twice from the same
 *      state: through the per-page ioctls, then, after giving the pages back
 *      through the per-page ioctls, through SNP_HOST_CONVERT_RANGE (one call
 *      per run), so both paths are timed on the same pages;
 *   3. the kept regions made private as whole 2M pages (level 1);
 *   4. everything back to shared through SNP_HOST_CONVERT_RANGE;
 *
 * then the fault phase of issue 9, on fresh THPs of its own (see
 * fault_phase()): stores to every shared page of a region holding one
 * private 4K page, counted and timed against a region holding none.
 *
 * With -C <lifetimes> it runs the churn workload of issue 12 instead (see
 * run_churn()): many guest lifetimes, each on a freshly allocated pool.
 *
 * Before the workload and after each step it records the kernel's own view
 * of the direct map (/proc/meminfo, /proc/vmstat, the page-table dump in
 * debugfs) and the module's (its counters and debugfs directmap file), one
 * line of "<what> <label> key=value ..." each; scripts/bench-report.py turns
 * them into the report and the picture.
 *
 * Nothing is made up: a piece the module lacks prints "missing <what>" and
 * makes the exit status 1; any other failure prints "error <what>" and stops.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <linux/snp_host.h>

/* The ABI of issue 5, until include/uapi/linux/snp_host.h carries it. */
#ifndef SNP_HOST_CONVERT_RANGE
struct snp_host_range {
	__u64 hva;		/* first page, aligned to the level */
	__u64 npages;		/* pages of the given level */
	__u64 gpa;		/* GPA of the first page (to_private) */
	__u32 asid;
	__u8 level;		/* SNP_HOST_LEVEL_* */
	__u8 to_private;	/* 1 = private, 0 = shared */
	__u8 immutable;
	__u8 reserved0;
	__u64 done;		/* out: pages converted; on error [0, done) changed */
	__u64 reserved[2];
};

#define SNP_HOST_CONVERT_RANGE	_IOWR(SNP_HOST_IOCTL_TYPE, 0x05, struct snp_host_range)
#endif

static_assert(sizeof(struct snp_host_range) == 56, "struct snp_host_range is 56 bytes");

/*
 * snp_host_stats read as an array of words, so that this program builds
 * whether the header still calls the direct-map counters reserved[] or
 * names them.
 */
#define STATS_WORDS		(sizeof(struct snp_host_stats) / sizeof(__u64))
static_assert(STATS_WORDS == 16, "struct snp_host_stats is 16 words");

static const char * const stat_names[] = {
	"private_4k", "private_2m", "make_private", "make_shared", "psmash",
	"transient_retries", "failures", "leaked_pages",
	/* issue 5: the first six reserved words */
	"dm_splits_2m", "dm_splits_1g", "dm_merges_2m", "dm_merges_1g",
	"dm_unmapped_pages", "tlb_flushes",
};

#define STAT_PRIVATE_4K		0
#define STAT_PRIVATE_2M		1
#define STAT_FIRST_DM		8

static const char * const policy_names[] = { "none", "split", "perpage", "coalesce" };

#define PATH_DIRECTMAP		"/sys/kernel/debug/snp_host/directmap"
#define PATH_PTDUMP		"/sys/kernel/debug/page_tables/kernel"
#define DIRECT_MAP_MARKER	"Low Kernel Mapping"

#define SZ_4K			4096UL
#define SZ_2M			(2UL << 20)
#define PAGES_PER_2M		512UL
#define PFN_MASK		((1ULL << 55) - 1)
#define PM_PRESENT		0x8000000000000000ULL
#define KPF_THP			22
#define ASID			1

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif

/* What the page-table dump says about one 2M cell of physical memory. */
#define CLASS_1G		'G'	/* inside a present 1G leaf */
#define CLASS_2M		'M'	/* a present, writable 2M leaf */
#define CLASS_2M_RO		'P'	/* a present 2M leaf, write-protected */
#define CLASS_4K		'K'	/* split to 4K, every page present and writable */
#define CLASS_4K_RO		'R'	/* split to 4K, some pages write-protected */
#define CLASS_HOLES		'H'	/* split to 4K, some pages not present */
#define CLASS_ABSENT		'N'	/* nothing present */
#define NR_CLASSES		7

static const char classes[NR_CLASSES] = {
	CLASS_1G, CLASS_2M, CLASS_2M_RO, CLASS_4K, CLASS_4K_RO, CLASS_HOLES, CLASS_ABSENT,
};

struct cell {
	unsigned int pte_present;	/* 4K pages mapped */
	unsigned int pte_absent;	/* 4K entries not present */
	unsigned int pte_ro;		/* 4K pages mapped read-only */
	char leaf;			/* CLASS_1G, CLASS_2M or 0 */
	bool leaf_ro;
};

/* The direct-map section of the page-table dump, summed up. */
struct pt_totals {
	unsigned long long base;	/* PAGE_OFFSET: where the section starts */
	bool have_base;
	unsigned long long kb_1g, kb_2m, kb_2m_ro, kb_4k;
	unsigned long long absent_4k, ro_4k;	/* 4K pages not present, read-only */
};

/* A run of 4K pages (or 2M pages at level 1) of the pool, by page index. */
struct run {
	unsigned long first;
	unsigned long count;
};

struct options {
	unsigned long long seed;
	unsigned long pool_mb;
	unsigned long percent;		/* phase 2 target, % of the pool's pages */
	unsigned long max_run;		/* phase 2 runs are 1..max_run pages */
	unsigned long kept;		/* regions for phase 3; 0: one in eight */
	const char *policy;		/* as loaded; NULL: do not check */
	unsigned long fault_regions;	/* fault phase: regions per run */
	unsigned long fault_runs;	/* fault phase: runs */
	unsigned long lifetimes;	/* churn: guest lifetimes; 0: the phases above */
};

static int dev = -1;
static char *pool;
static unsigned long nregions, npages;
static unsigned long long *region_pfn;
static unsigned int *region_private;	/* private 4K pages per region */
static bool *region_kept, *region_huge;
static unsigned char *page_private;
static char *class_before;		/* cell class of each region before the workload */
static bool have_range, have_policy, have_dmfs = true;
static bool churning;			/* the churn workload: no fixed pool */
static unsigned int status_flags;	/* snp_host_status.flags */
static int status;

/* A piece of issue 5 the module lacks: said loudly, and the run fails. */
static void report_missing(const char *what, const char *why)
{
	printf("missing %s: %s\n", what, why);
	status = 1;
}

static void fatal(const char *what)
{
	printf("error %s\n", what);
	fflush(stdout);
	exit(2);
}

static unsigned long long rng_state;

/* splitmix64: small, seedable, the same sequence everywhere. */
static unsigned long long rng(void)
{
	unsigned long long z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned long below(unsigned long n)
{
	return rng() % n;
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void *zalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		fatal("out of memory");
	return p;
}

/* Records the conversion of `count` pages of `level` at `first` in our own books. */
static void account(unsigned long first, unsigned long count, int level, bool to_private)
{
	unsigned long i, r;

	if (level) {
		for (i = 0; i < count; i++)
			region_huge[first / PAGES_PER_2M + i] = to_private;
		return;
	}
	for (i = first; i < first + count; i++) {
		r = i / PAGES_PER_2M;
		if (page_private[i] == to_private)
			fatal("bench bookkeeping: page converted twice");
		page_private[i] = to_private;
		if (to_private)
			region_private[r]++;
		else
			region_private[r]--;
	}
}

/* One conversion per ioctl: MAKE_PRIVATE or MAKE_SHARED for each page. */
static void convert_pages(const struct run *run, int level, bool to_private)
{
	unsigned long step = level ? PAGES_PER_2M : 1;
	struct snp_host_page p;
	unsigned long i, idx;

	for (i = 0; i < run->count; i++) {
		idx = run->first + i * step;
		memset(&p, 0, sizeof(p));
		p.hva = (uintptr_t)(pool + idx * SZ_4K);
		p.level = level;
		if (to_private) {
			p.gpa = idx * SZ_4K;
			p.asid = ASID;
		}
		if (ioctl(dev, to_private ? SNP_HOST_MAKE_PRIVATE : SNP_HOST_MAKE_SHARED, &p)) {
			printf("error %s level %d of pool page %lu: %s\n",
			       to_private ? "SNP_HOST_MAKE_PRIVATE" : "SNP_HOST_MAKE_SHARED",
			       level, idx, strerror(errno));
			fatal("stopping: a per-page conversion failed");
		}
		account(idx, 1, level, to_private);
	}
}

static int range_ioctl(unsigned long first, unsigned long count, int level, bool to_private,
		       unsigned long long *done)
{
	struct snp_host_range r;
	int ret;

	memset(&r, 0, sizeof(r));
	r.hva = (uintptr_t)(pool + first * SZ_4K);
	r.npages = count;
	r.level = level;
	r.to_private = to_private;
	if (to_private) {
		r.gpa = first * SZ_4K;
		r.asid = ASID;
	}
	ret = ioctl(dev, SNP_HOST_CONVERT_RANGE, &r) ? -errno : 0;
	*done = r.done;
	return ret;
}

/* One SNP_HOST_CONVERT_RANGE call for the whole run. */
static void convert_range(const struct run *run, int level, bool to_private)
{
	unsigned long long done = 0;
	int ret;

	ret = range_ioctl(run->first, run->count, level, to_private, &done);
	if (ret || done != run->count) {
		printf("error SNP_HOST_CONVERT_RANGE level %d to_private %d",
		       level, to_private);
		printf(" of pool pages %lu+%lu: %s, done %llu\n", run->first, run->count,
		       ret ? strerror(-ret) : "returned 0", done);
		if (done <= run->count)
			account(run->first, done, level, to_private);
		fatal("stopping: a range conversion failed");
	}
	account(run->first, run->count, level, to_private);
}

/*
 * Converts every run, timed as one batch, and prints a "rate" line.
 * `range` asks for SNP_HOST_CONVERT_RANGE; without it the per-page ioctls
 * do the work and the line says path=page, so no number is misattributed.
 */
static void convert(const char *name, const struct run *runs, unsigned long nruns, int level,
		    bool to_private, bool range)
{
	unsigned long long t0, t1, conversions = 0, calls = 0;
	unsigned long i;

	range = range && have_range;
	t0 = now_ns();
	for (i = 0; i < nruns; i++) {
		if (range)
			convert_range(&runs[i], level, to_private);
		else
			convert_pages(&runs[i], level, to_private);
		conversions += runs[i].count;
		calls += range ? 1 : runs[i].count;
	}
	t1 = now_ns();
	printf("rate %s path=%s level=%d dir=%s conversions=%llu calls=%llu ns=%llu\n", name,
	       range ? "range" : "page", level, to_private ? "private" : "shared",
	       conversions, calls, t1 - t0);
	fflush(stdout);
}

static FILE *open_or_missing(const char *path, const char *what)
{
	FILE *f = fopen(path, "r");

	if (!f) {
		char why[256];

		snprintf(why, sizeof(why), "cannot open %s: %s", path, strerror(errno));
		report_missing(what, why);
	}
	return f;
}

/* DirectMap4k/2M/1G from /proc/meminfo, in kB. */
static void snap_meminfo(const char *label)
{
	char line[256], key[64];
	unsigned long long kb;
	FILE *f = open_or_missing("/proc/meminfo", "meminfo");

	if (!f)
		return;
	printf("meminfo %s", label);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "DirectMap", 9) &&
		    sscanf(line, "%63[^:]: %llu", key, &kb) == 2)
			printf(" %s=%llu", key, kb);
	printf("\n");
	fclose(f);
}

/* The direct_map_* counters of /proc/vmstat. */
static void snap_vmstat(const char *label)
{
	char line[256], key[64];
	unsigned long long v;
	static bool said;
	int found = 0;
	FILE *f = open_or_missing("/proc/vmstat", "vmstat");

	if (!f)
		return;
	printf("vmstat %s", label);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "direct_map_", 11) && sscanf(line, "%63s %llu", key, &v) == 2) {
			printf(" %s=%llu", key, v);
			found++;
		}
	printf("\n");
	fclose(f);
	if (!found && !said) {
		report_missing("vmstat",
			       "/proc/vmstat has no direct_map_* counters (CONFIG_VM_EVENT_COUNTERS=n?)");
		said = true;
	}
}

/* The module's counters; the direct-map ones only where the module has a policy. */
static void snap_stats(const char *label)
{
	__u64 words[STATS_WORDS];
	size_t i, n = have_policy ? STAT_FIRST_DM + 6 : STAT_FIRST_DM;

	if (ioctl(dev, SNP_HOST_GET_STATS, words))
		fatal("SNP_HOST_GET_STATS failed");
	printf("stats %s", label);
	for (i = 0; i < n; i++)
		printf(" %s=%llu", stat_names[i], (unsigned long long)words[i]);
	printf("\n");
}

static struct cell *cells;
static unsigned long ncells, cells_cap;

static void grow_cells(unsigned long n)
{
	unsigned long cap = cells_cap ? cells_cap : 1024;

	if (n <= ncells)
		return;
	if (n > cells_cap) {
		while (cap < n)
			cap *= 2;
		cells = realloc(cells, cap * sizeof(*cells));
		if (!cells)
			fatal("out of memory");
		memset(cells + cells_cap, 0, (cap - cells_cap) * sizeof(*cells));
		cells_cap = cap;
	}
	ncells = n;
}

static char class_of(unsigned long cell)
{
	const struct cell *c;

	if (cell >= ncells)
		return CLASS_ABSENT;
	c = &cells[cell];
	if (c->leaf)
		return c->leaf == CLASS_2M && c->leaf_ro ? CLASS_2M_RO : c->leaf;
	if (!c->pte_present)
		return CLASS_ABSENT;
	if (c->pte_absent || c->pte_present < PAGES_PER_2M)
		return CLASS_HOLES;
	return c->pte_ro ? CLASS_4K_RO : CLASS_4K;
}

static bool is_split(char c)
{
	return c == CLASS_4K || c == CLASS_4K_RO || c == CLASS_HOLES;
}

/* Adds the 4K entries of [start, end) (physical) to the cells they fall in. */
static void add_ptes(unsigned long long start, unsigned long long end, bool present, bool ro)
{
	unsigned long cell;
	unsigned long long to;

	grow_cells((end + SZ_2M - 1) / SZ_2M);
	while (start < end) {
		cell = start / SZ_2M;
		to = (cell + 1ULL) * SZ_2M;
		if (to > end)
			to = end;
		if (!present)
			cells[cell].pte_absent += (to - start) / SZ_4K;
		else
			cells[cell].pte_present += (to - start) / SZ_4K;
		if (present && ro)
			cells[cell].pte_ro += (to - start) / SZ_4K;
		start = to;
	}
}

/*
 * Parses one line of the direct-map section of the page-table dump:
 * "0x<start>-0x<end>  <size>  <flags...>  <level>", where a not-present
 * range has no flags at all and a read-only one has "ro" where a writable
 * one has "RW".  The first range starts at PAGE_OFFSET.
 */
static void parse_ptdump_line(char *line, struct pt_totals *t)
{
	unsigned long long start, end, ps, pe, c;
	char *tok, *level = NULL, *save;
	bool present, ro = false;
	int ntok = 0;

	if (sscanf(line, "0x%llx-0x%llx", &start, &end) != 2 || end <= start)
		return;
	for (tok = strtok_r(line, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		level = tok;
		ro |= !strcmp(tok, "ro");
		ntok++;
	}
	if (!t->have_base) {
		t->base = start;
		t->have_base = true;
	}
	present = ntok > 3;
	ps = start - t->base;
	pe = end - t->base;
	if (!strcmp(level, "pte")) {
		add_ptes(ps, pe, present, ro);
		if (!present)
			t->absent_4k += (pe - ps) / SZ_4K;
		else
			t->kb_4k += (pe - ps) >> 10;
		if (present && ro)
			t->ro_4k += (pe - ps) / SZ_4K;
	} else if (present && (!strcmp(level, "pmd") || !strcmp(level, "pud"))) {
		bool gig = level[1] == 'u';

		grow_cells((pe + SZ_2M - 1) / SZ_2M);
		for (c = ps / SZ_2M; c < pe / SZ_2M; c++) {
			cells[c].leaf = gig ? CLASS_1G : CLASS_2M;
			cells[c].leaf_ro = ro;
		}
		if (gig)
			t->kb_1g += (pe - ps) >> 10;
		else
			t->kb_2m += (pe - ps) >> 10;
		if (!gig && ro)
			t->kb_2m_ro += (pe - ps) >> 10;
	}
}

/* Groups of the pool's regions, by what the workload did to them. */
enum group { GROUP_ALL, GROUP_PRIV4K, GROUP_HUGE, GROUP_CLEAN };

static const char * const group_names[] = { "all", "priv4k", "huge", "clean" };

static bool in_group(unsigned long r, enum group g)
{
	switch (g) {
	case GROUP_PRIV4K:
		return region_private[r] > 0;
	case GROUP_HUGE:
		return region_huge[r];
	case GROUP_CLEAN:
		return !region_private[r] && !region_huge[r];
	default:
		return true;
	}
}

/* Prints, for the pool's regions in group `g`, how the page-table dump maps them. */
static void pool_group(const char *label, enum group g)
{
	unsigned long r, n = 0, was_split = 0, by[NR_CLASSES] = { 0 };
	char c;
	int k;

	for (r = 0; r < nregions; r++) {
		if (!in_group(r, g))
			continue;
		n++;
		c = class_of(region_pfn[r] / PAGES_PER_2M);
		for (k = 0; k < NR_CLASSES; k++)
			if (classes[k] == c)
				by[k]++;
		if (class_before && is_split(class_before[r]))
			was_split++;
	}
	printf("pool %s group=%s regions=%lu", label, group_names[g], n);
	for (k = 0; k < NR_CLASSES; k++)
		printf(" %c=%lu", classes[k], by[k]);
	printf(" was_split=%lu\n", was_split);
}

/*
 * The direct map as the kernel's page-table dump shows it: totals, one
 * "ptmap <label> <first 2M cell> <cells> <class>" line per run of 2M cells
 * (cell = physical address / 2M) mapped alike, and the pool's regions.
 */
static void snap_ptdump(const char *label)
{
	struct pt_totals t = { 0 };
	unsigned long c, from;
	bool in = false;
	char line[512];
	enum group g;
	FILE *f = open_or_missing(PATH_PTDUMP, "ptdump");

	if (!f)
		return;
	ncells = 0;
	if (cells)
		memset(cells, 0, cells_cap * sizeof(*cells));
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "---[", 4)) {
			in = strstr(line, DIRECT_MAP_MARKER);
			continue;
		}
		if (in)
			parse_ptdump_line(line, &t);
	}
	fclose(f);
	if (!t.have_base) {
		report_missing("ptdump", "no \"" DIRECT_MAP_MARKER "\" section in " PATH_PTDUMP);
		return;
	}
	printf("ptdump %s kb_1g=%llu kb_2m=%llu kb_2m_ro=%llu kb_4k=%llu absent_4k=%llu ro_4k=%llu",
	       label, t.kb_1g, t.kb_2m, t.kb_2m_ro, t.kb_4k, t.absent_4k, t.ro_4k);
	printf(" cells=%lu\n", ncells);
	for (from = 0, c = 1; c <= ncells; c++)
		if (c == ncells || class_of(c) != class_of(from)) {
			printf("ptmap %s %lu %lu %c\n", label, from, c - from, class_of(from));
			from = c;
		}
	if (churning)
		return;
	for (g = GROUP_ALL; g <= GROUP_CLEAN; g++)
		pool_group(label, g);
	if (!class_before) {
		class_before = zalloc(nregions, 1);
		for (c = 0; c < nregions; c++)
			class_before[c] = class_of(region_pfn[c] / PAGES_PER_2M);
	}
}

/*
 * The module's debugfs directmap file, one line per 2M region it touched:
 * "0x<region pfn> <4K|2M|1G> private=<n>".  Checked against the page-table
 * dump read just before.
 */
static void snap_dmfs(const char *label)
{
	unsigned long long pfn, priv, total = 0;
	unsigned long lines = 0, bad = 0, disagree = 0, by[3] = { 0 };
	char line[256], size[8], c, want;
	FILE *f;

	if (!have_dmfs)
		return;
	f = fopen(PATH_DIRECTMAP, "r");
	if (!f) {
		char why[256];

		snprintf(why, sizeof(why), "cannot open %s: %s", PATH_DIRECTMAP, strerror(errno));
		report_missing("debugfs_directmap", why);
		have_dmfs = false;
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "0x%llx %7s private=%llu", &pfn, size, &priv) != 3) {
			bad++;
			continue;
		}
		lines++;
		total += priv;
		if (!strcmp(size, "4K")) {
			by[0]++;
			want = CLASS_4K;
		} else if (!strcmp(size, "2M")) {
			by[1]++;
			want = CLASS_2M;
		} else if (!strcmp(size, "1G")) {
			by[2]++;
			want = CLASS_1G;
		} else {
			bad++;
			continue;
		}
		/* Protected or unmapped pages do not change the size of the mapping. */
		c = class_of(pfn / PAGES_PER_2M);
		if (is_split(c))
			c = CLASS_4K;
		if (c == CLASS_2M_RO || c == CLASS_ABSENT)
			c = CLASS_2M;
		if (c != want)
			disagree++;
	}
	fclose(f);
	printf("dmfs %s regions=%lu 4K=%lu 2M=%lu 1G=%lu private=%llu", label, lines, by[0], by[1],
	       by[2], total);
	printf(" unparsed=%lu disagree_ptdump=%lu\n", bad, disagree);
	if (bad)
		report_missing("debugfs_directmap format",
			       "lines not of the form 0x<pfn> <4K|2M|1G> private=<n>");
}

static void snapshot(const char *label)
{
	snap_meminfo(label);
	snap_vmstat(label);
	snap_stats(label);
	snap_ptdump(label);
	snap_dmfs(label);
	fflush(stdout);
}

/*
 * Is the 2M region at `base` one 2M folio mapped whole (pagemap), and a THP
 * (kpageflags)?  Its first PFN goes to *pfn.
 */
static bool is_thp(int pagemap, int kpageflags, const char *base, unsigned long long *pfn)
{
	unsigned long long pm[PAGES_PER_2M], flags;
	off_t off = (uintptr_t)base / SZ_4K * sizeof(pm[0]);
	unsigned long i;

	if (pread(pagemap, pm, sizeof(pm), off) != sizeof(pm))
		fatal("cannot read /proc/self/pagemap");
	for (i = 0; i < PAGES_PER_2M; i++)
		if (!(pm[i] & PM_PRESENT) || (pm[i] & PFN_MASK) != (pm[0] & PFN_MASK) + i)
			return false;
	*pfn = pm[0] & PFN_MASK;
	if (!*pfn)
		fatal("/proc/self/pagemap shows no PFNs: run as root");
	if (*pfn % PAGES_PER_2M)
		return false;
	if (pread(kpageflags, &flags, sizeof(flags), *pfn * sizeof(flags)) != sizeof(flags))
		fatal("cannot read /proc/kpageflags");
	return flags & (1ULL << KPF_THP);
}

/* Is pool region `r` one THP?  Its PFN goes to region_pfn[r]. */
static bool region_is_thp(int pagemap, int kpageflags, unsigned long r)
{
	return is_thp(pagemap, kpageflags, pool + r * SZ_2M, &region_pfn[r]);
}

static int cmp_pfn(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

/* Our books of the pool's pages, for `npages` pages in `nregions` regions. */
static void alloc_books(void)
{
	region_pfn = zalloc(nregions, sizeof(*region_pfn));
	region_private = zalloc(nregions, sizeof(*region_private));
	region_kept = zalloc(nregions, sizeof(*region_kept));
	region_huge = zalloc(nregions, sizeof(*region_huge));
	page_private = zalloc(npages, 1);
}

/*
 * Maps and touches a pool of `npages` pages, which must be one THP per
 * region, and notes each region's PFN.  Returns the mapping, for munmap().
 */
static char *map_pool(void)
{
	unsigned long long t0;
	int pagemap, kpageflags;
	unsigned long r;
	char *raw;

	raw = mmap(NULL, npages * SZ_4K + SZ_2M, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		fatal("cannot map the pool");
	pool = (char *)(((uintptr_t)raw + SZ_2M - 1) & ~(SZ_2M - 1));
	if (madvise(pool, npages * SZ_4K, MADV_HUGEPAGE))
		fatal("MADV_HUGEPAGE failed: no THP in this kernel?");
	t0 = now_ns();
	for (r = 0; r < nregions; r++)
		memset(pool + r * SZ_2M, 0x5a, SZ_4K);
	printf("setup touched %lu regions in %llu ms\n", nregions, (now_ns() - t0) / 1000000);

	pagemap = open("/proc/self/pagemap", O_RDONLY);
	kpageflags = open("/proc/kpageflags", O_RDONLY);
	if (pagemap < 0 || kpageflags < 0)
		fatal("cannot open /proc/self/pagemap or /proc/kpageflags");
	for (r = 0; r < nregions; r++) {
		if (region_is_thp(pagemap, kpageflags, r))
			continue;
		/* One more chance: let khugepaged's code collapse it now. */
		madvise(pool + r * SZ_2M, SZ_2M, MADV_COLLAPSE);
		if (!region_is_thp(pagemap, kpageflags, r)) {
			printf("error pool region %lu is not one THP\n", r);
			fatal("stopping: the workload needs a THP-backed pool");
		}
	}
	close(pagemap);
	close(kpageflags);
	return raw;
}

/* Maps, touches and checks the pool: every region must be one THP. */
static void setup_pool(unsigned long pool_mb)
{
	unsigned long long *sorted;
	unsigned long r, from;

	npages = pool_mb * (1UL << 20) / SZ_4K;
	nregions = npages / PAGES_PER_2M;
	alloc_books();
	map_pool();

	/* Where the pool lies in physical memory, in 2M cells, for the picture. */
	sorted = zalloc(nregions, sizeof(*sorted));
	memcpy(sorted, region_pfn, nregions * sizeof(*sorted));
	qsort(sorted, nregions, sizeof(*sorted), cmp_pfn);
	for (from = 0, r = 1; r <= nregions; r++)
		if (r == nregions || sorted[r] != sorted[r - 1] + PAGES_PER_2M) {
			printf("poolcells %llu %lu\n", sorted[from] / PAGES_PER_2M, r - from);
			from = r;
		}
	free(sorted);
}

/* Phase 1: one random 4K page in each region not kept for phase 3. */
static struct run *plan_phase1(unsigned long *n)
{
	struct run *runs = zalloc(nregions, sizeof(*runs));
	unsigned long r;

	*n = 0;
	for (r = 0; r < nregions; r++) {
		if (region_kept[r])
			continue;
		runs[*n].first = r * PAGES_PER_2M + below(PAGES_PER_2M);
		runs[*n].count = 1;
		(*n)++;
	}
	return runs;
}

/*
 * Phase 2: random runs of 1..max_run shared pages inside one region not kept
 * for phase 3, until `target` pages of the pool are private at 4K.  A run
 * stops short at a private page or at the end of its region.
 */
static struct run *plan_phase2(unsigned long target, unsigned long max_run, unsigned long *n)
{
	unsigned long cap = 1024, have = 0, r, first, len, want, tries = 0;
	unsigned char *taken = zalloc(npages, 1);
	struct run *runs = zalloc(cap, sizeof(*runs));

	memcpy(taken, page_private, npages);
	for (first = 0; first < npages; first++)
		have += taken[first];
	*n = 0;
	while (have < target) {
		if (++tries > 100 * target)
			fatal("phase 2 cannot find enough shared pages: lower -f");
		r = below(nregions);
		if (region_kept[r])
			continue;
		first = r * PAGES_PER_2M + below(PAGES_PER_2M);
		want = 1 + below(max_run);
		if (want > target - have)
			want = target - have;
		for (len = 0; len < want && (first + len) / PAGES_PER_2M == r &&
		     !taken[first + len]; len++)
			taken[first + len] = 1;
		if (!len)
			continue;
		if (*n == cap) {
			cap *= 2;
			runs = realloc(runs, cap * sizeof(*runs));
			if (!runs)
				fatal("out of memory");
		}
		runs[*n].first = first;
		runs[*n].count = len;
		(*n)++;
		have += len;
	}
	free(taken);
	return runs;
}

/* Phase 3: the kept regions, as runs of neighbouring 2M pages. */
static struct run *plan_phase3(unsigned long *n)
{
	struct run *runs = zalloc(nregions, sizeof(*runs));
	unsigned long r;

	*n = 0;
	for (r = 0; r < nregions; r++) {
		if (!region_kept[r])
			continue;
		if (*n && runs[*n - 1].first + runs[*n - 1].count * PAGES_PER_2M ==
			  r * PAGES_PER_2M) {
			runs[*n - 1].count++;
			continue;
		}
		runs[*n].first = r * PAGES_PER_2M;
		runs[*n].count = 1;
		(*n)++;
	}
	return runs;
}

/* Keeps `kept` random regions out of phases 1 and 2, for phase 3. */
static void pick_kept(unsigned long kept)
{
	unsigned long *order = zalloc(nregions, sizeof(*order));
	unsigned long i, j, t;

	for (i = 0; i < nregions; i++)
		order[i] = i;
	for (i = 0; i < kept && i < nregions; i++) {
		j = i + below(nregions - i);
		t = order[i];
		order[i] = order[j];
		order[j] = t;
		region_kept[order[i]] = true;
	}
	free(order);
}

/*
 * The fault phase (issue 9).  With the module's hooks, making a 4K page of a
 * PMD-mapped THP private write-protects the PMD; the first store anywhere in
 * the region then takes one RMP fault that splits the PMD, and the other
 * shared pages are writable without faults.  This phase counts that and
 * times it: per region, the module's fault counters and /proc/vmstat
 * thp_split_pmd around one store to each shared page, and the same stores
 * on a control region (a THP holding no private page).
 *
 * It runs on fresh THPs of its own, after phase 4, rather than on the pool:
 * phases 1-4 and their snapshots stay as they were, and every region it
 * measures starts as one writable PMD.  A pool region is in no such state:
 * its PMD was write-protected by phase 1 and may still be after phase 4, so
 * its first store could take an ordinary write fault that the module does
 * not count but the clock does, and its control would not be alike.
 */
#define FAULT_STORE_OFFSET	64	/* where in each page the stores go */

struct fault_count {
	unsigned long long faults;	/* snp_host_fault_stats.user_faults */
	unsigned long long splits;	/* snp_host_fault_stats.thp_splits */
	unsigned long long sigbus;	/* snp_host_fault_stats.sigbus */
	unsigned long long vm_splits;	/* /proc/vmstat thp_split_pmd */
};

/* One timed touch of a region: the time, and what the counters saw. */
struct touch {
	unsigned long long ns;
	unsigned long caught;		/* SIGBUS caught by this program */
	struct fault_count d;		/* change of the counters */
};

/* One counter of /proc/vmstat; false when there is none of that name. */
static bool vmstat_counter(const char *name, unsigned long long *v)
{
	char line[256], key[64];
	unsigned long long x;
	bool found = false;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		fatal("cannot open /proc/vmstat");
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %llu", key, &x) == 2 && !strcmp(key, name)) {
			*v = x;
			found = true;
		}
	fclose(f);
	return found;
}

static int fault_stats(struct snp_host_fault_stats *fs)
{
	memset(fs, 0, sizeof(*fs));
	return ioctl(dev, SNP_HOST_GET_FAULT_STATS, fs) ? -errno : 0;
}

static void read_fault_count(struct fault_count *c)
{
	struct snp_host_fault_stats fs;

	if (fault_stats(&fs))
		fatal("SNP_HOST_GET_FAULT_STATS failed");
	if (!vmstat_counter("thp_split_pmd", &c->vm_splits))
		fatal("/proc/vmstat lost thp_split_pmd");
	c->faults = fs.user_faults;
	c->splits = fs.thp_splits;
	c->sigbus = fs.sigbus;
}

static void fault_delta(const struct fault_count *a, const struct fault_count *b,
			struct fault_count *d)
{
	d->faults = b->faults - a->faults;
	d->splits = b->splits - a->splits;
	d->sigbus = b->sigbus - a->sigbus;
	d->vm_splits = b->vm_splits - a->vm_splits;
}

/*
 * A store to a shared page must never get SIGBUS; if one does, the handler
 * goes back to touch_region(), which counts it and goes on with the next
 * page, so the run reports it instead of dying.  Outside touch_region() the
 * signal keeps its default action.  The state the handler and the jump
 * share is static and accessed with __atomic builtins (signal fences order
 * it against the stores), so it is defined after siglongjmp().
 */
static sigjmp_buf touch_env;
static int touching;
static unsigned long touch_page, touch_next, touch_caught;

static void on_sigbus(int sig)
{
	if (__atomic_load_n(&touching, __ATOMIC_RELAXED))
		siglongjmp(touch_env, 1);
	/* Not ours: the store is retried and the default action ends the program. */
	signal(sig, SIG_DFL);
}

/* One store instruction to each page of `base` from page `from` on, but page `skip`. */
static void store_pages(char *base, unsigned long from, unsigned long skip, char value)
{
	unsigned long i;

	for (i = from; i < PAGES_PER_2M; i++) {
		if (i == skip)
			continue;
		__atomic_store_n(&touch_page, i, __ATOMIC_RELAXED);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		__atomic_store_n(base + i * SZ_4K + FAULT_STORE_OFFSET, value, __ATOMIC_RELAXED);
	}
}

/*
 * Stores one byte to each 4K page of the 2M region at `base` except page
 * `skip`, in address order; returns the nanoseconds it took.  The jump
 * buffer keeps no signal mask (SA_NODEFER leaves SIGBUS unblocked), so
 * nothing but the stores and two clock reads is timed.
 */
static unsigned long long touch_region(char *base, unsigned long skip, char value,
				       unsigned long *caught)
{
	unsigned long long t0, t1;

	__atomic_store_n(&touch_next, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&touch_caught, 0, __ATOMIC_RELAXED);
	t0 = now_ns();
	__atomic_store_n(&touching, 1, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (sigsetjmp(touch_env, 0)) {
		__atomic_add_fetch(&touch_caught, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&touch_next, __atomic_load_n(&touch_page, __ATOMIC_RELAXED) + 1,
				 __ATOMIC_RELAXED);
	}
	store_pages(base, __atomic_load_n(&touch_next, __ATOMIC_RELAXED), skip, value);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&touching, 0, __ATOMIC_RELAXED);
	t1 = now_ns();
	*caught = __atomic_load_n(&touch_caught, __ATOMIC_RELAXED);
	return t1 - t0;
}

static void touch_counted(char *base, unsigned long skip, char value, struct touch *t)
{
	struct fault_count a, b;

	read_fault_count(&a);
	t->ns = touch_region(base, skip, value, &t->caught);
	read_fault_count(&b);
	fault_delta(&a, &b, &t->d);
}

static void print_touch(const char *prefix, const struct touch *t)
{
	printf(" %sfaults=%llu %ssplits=%llu %svm_splits=%llu %ssigbus=%llu %scaught=%lu %sns=%llu",
	       prefix, t->d.faults, prefix, t->d.splits, prefix, t->d.vm_splits, prefix,
	       t->d.sigbus, prefix, t->caught, prefix, t->ns);
}

static void fault_page_ioctl(char *addr, unsigned long long gpa, bool to_private)
{
	struct snp_host_page p;

	memset(&p, 0, sizeof(p));
	p.hva = (uintptr_t)addr;
	p.level = SNP_HOST_LEVEL_4K;
	if (to_private) {
		p.gpa = gpa;
		p.asid = ASID;
	}
	if (ioctl(dev, to_private ? SNP_HOST_MAKE_PRIVATE : SNP_HOST_MAKE_SHARED, &p)) {
		printf("error fault phase: %s of a 4K page: %s\n",
		       to_private ? "SNP_HOST_MAKE_PRIVATE" : "SNP_HOST_MAKE_SHARED",
		       strerror(errno));
		fatal("stopping: a fault-phase conversion failed");
	}
}

/*
 * One run: 2 * n fresh THPs, in pairs of a region with one private 4K page
 * (picked at random) and its control, which gets the same stores.  Prints
 *   faultprep run<k> regions=<n> faults= splits= vm_splits=
 *	what making the pages private did to the counters (nothing, if it
 *	splits no user mapping);
 *   fault run<k> region=<i> page=<private page> first=<private|control>
 *	faults= splits= vm_splits= sigbus= caught= ns=  and the same with
 *	control_ in front: the counters' change and the time of each touch;
 *   faultrun run<k> regions=<n> ns=<sum> control_ns=<sum>
 */
static void fault_run(unsigned long run, unsigned long n, int pagemap, int kpageflags)
{
	unsigned long long pfn, sum = 0, control_sum = 0;
	size_t len = 2 * n * SZ_2M;
	unsigned long i, *page;
	struct fault_count a, b, d;
	struct touch priv, ctrl;
	char *raw, *area, *base;
	bool priv_first;

	raw = mmap(NULL, len + SZ_2M, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		fatal("cannot map the fault phase's regions");
	area = (char *)(((uintptr_t)raw + SZ_2M - 1) & ~(SZ_2M - 1));
	if (madvise(area, len, MADV_HUGEPAGE))
		fatal("MADV_HUGEPAGE failed on the fault phase's regions");
	for (i = 0; i < 2 * n; i++) {
		base = area + i * SZ_2M;
		memset(base, 0x5a, SZ_4K);
		if (is_thp(pagemap, kpageflags, base, &pfn))
			continue;
		madvise(base, SZ_2M, MADV_COLLAPSE);
		if (!is_thp(pagemap, kpageflags, base, &pfn)) {
			printf("error fault phase run %lu: region %lu is not one THP\n", run, i);
			fatal("stopping: the fault phase needs THPs");
		}
	}

	/* GPAs above the pool's, so no GPA is given twice. */
	page = zalloc(n, sizeof(*page));
	read_fault_count(&a);
	for (i = 0; i < n; i++) {
		page[i] = below(PAGES_PER_2M);
		fault_page_ioctl(area + 2 * i * SZ_2M + page[i] * SZ_4K,
				 (npages + i * PAGES_PER_2M + page[i]) * SZ_4K, true);
	}
	read_fault_count(&b);
	fault_delta(&a, &b, &d);
	printf("faultprep run%lu regions=%lu faults=%llu splits=%llu vm_splits=%llu\n",
	       run, n, d.faults, d.splits, d.vm_splits);

	for (i = 0; i < n; i++) {
		base = area + 2 * i * SZ_2M;
		/* Which region goes first alternates, so a drift of the clock favours neither. */
		priv_first = !(i % 2);
		if (priv_first)
			touch_counted(base, page[i], (char)run, &priv);
		touch_counted(base + SZ_2M, page[i], (char)run, &ctrl);
		if (!priv_first)
			touch_counted(base, page[i], (char)run, &priv);
		sum += priv.ns;
		control_sum += ctrl.ns;
		printf("fault run%lu region=%lu page=%lu first=%s", run, i, page[i],
		       priv_first ? "private" : "control");
		print_touch("", &priv);
		print_touch("control_", &ctrl);
		printf("\n");
	}
	printf("faultrun run%lu regions=%lu ns=%llu control_ns=%llu\n", run, n, sum, control_sum);

	for (i = 0; i < n; i++)
		fault_page_ioctl(area + 2 * i * SZ_2M + page[i] * SZ_4K, 0, false);
	free(page);
	if (munmap(raw, len + SZ_2M))
		fatal("cannot unmap the fault phase's regions");
}

static void fault_phase(unsigned long n, unsigned long runs)
{
	struct sigaction sa, old;
	struct snp_host_fault_stats fs;
	unsigned long long v;
	int pagemap, kpageflags, ret;
	unsigned long run;
	char why[160];

	ret = fault_stats(&fs);
	if (ret) {
		snprintf(why, sizeof(why),
			 "SNP_HOST_GET_FAULT_STATS: %s; the fault phase cannot count and does not run",
			 strerror(-ret));
		report_missing("fault_stats", why);
		return;
	}
	if (!vmstat_counter("thp_split_pmd", &v)) {
		report_missing("thp_split_pmd",
			       "/proc/vmstat has no thp_split_pmd; the fault phase does not run");
		return;
	}
	pagemap = open("/proc/self/pagemap", O_RDONLY);
	kpageflags = open("/proc/kpageflags", O_RDONLY);
	if (pagemap < 0 || kpageflags < 0)
		fatal("cannot open /proc/self/pagemap or /proc/kpageflags");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sa.sa_flags = SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &old))
		fatal("cannot catch SIGBUS");
	for (run = 1; run <= runs; run++)
		fault_run(run, n, pagemap, kpageflags);
	sigaction(SIGBUS, &old, NULL);
	close(pagemap);
	close(kpageflags);
}

/*
 * The churn workload (issue 12, -C <lifetimes>): guest lifetimes one after
 * the other, each on a pool allocated afresh, whose THPs land wherever the
 * kernel's allocator puts them this time.  In each lifetime a fresh random
 * placement, seeded by the seed and the lifetime's number, makes about -f %
 * of the pool's pages private through SNP_HOST_CONVERT_RANGE: one region in
 * CHURN_HUGE_EVERY as a 2M page, then random runs of 1..-r 4K pages, each
 * inside one of the regions picked to hold them (one in CHURN_4K_EVERY);
 * then everything goes back to shared, through CONVERT_RANGE as well, and
 * the pool is unmapped, which frees its memory.  Each lifetime prints:
 *
 *   churnpool L<n> <first region> <regions> <pfn>
 *	where the pool lay: regions first.. are the THPs from PFN pfn on, one
 *	line per run of physically contiguous regions;
 *   churnplan L<n> huge=<2M pages> runs=<4K runs> pages4k=<4K pages> hash=<h>
 *	the placement; h is the FNV-1a hash of its conversions in order
 *	(first page, count, level: three little-endian 64-bit words each).
 *	The host's simulation (make simulate) regenerates the placement from
 *	the seed, checks the hash and replays it on the PFNs above;
 *   churnrate L<n> dir=private|shared calls=<ioctls> pages=<4K pages> ns=<time>
 *   the snapshot lines labelled L<n>-private (without the page-table dump)
 *	while the placement is private, and L<n> after the pool is freed;
 *
 * after the snapshot L0, taken before the first lifetime.
 */
#define CHURN_HUGE_EVERY	16
#define CHURN_4K_EVERY		4
#define FNV_OFFSET		0xcbf29ce484222325ULL
#define FNV_PRIME		0x100000001b3ULL

/* One conversion of a churn placement: `count` pages of `level` from pool page `first`. */
struct churn_op {
	unsigned long first;
	unsigned long count;
	int level;
};

/* The generator's state for lifetime `lifetime`: the same in the simulation. */
static unsigned long long churn_seed(unsigned long long seed, unsigned long lifetime)
{
	return seed * FNV_PRIME + lifetime;
}

static unsigned long long fnv1a(unsigned long long h, unsigned long long v)
{
	int i;

	for (i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= FNV_PRIME;
	}
	return h;
}

static struct churn_op *churn_plan(const struct options *o, unsigned long lifetime,
				   unsigned long *n)
{
	unsigned long nhuge = nregions / CHURN_HUGE_EVERY, n4k = nregions / CHURN_4K_EVERY;
	unsigned long target = npages * o->percent / 100, have = 0, tries = 0, runs = 0;
	unsigned long cap = nhuge + 1024, i, j, t, r, first, len, want;
	unsigned long *order = zalloc(nregions, sizeof(*order));
	unsigned char *taken = zalloc(npages, 1);
	struct churn_op *ops = zalloc(cap, sizeof(*ops));
	unsigned long long hash = FNV_OFFSET;

	rng_state = churn_seed(o->seed, lifetime);
	for (i = 0; i < nregions; i++)
		order[i] = i;
	for (i = 0; i < nhuge + n4k; i++) {
		j = i + below(nregions - i);
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	*n = 0;
	for (i = 0; i < nhuge; i++) {
		ops[*n].first = order[i] * PAGES_PER_2M;
		ops[*n].count = 1;
		ops[*n].level = 1;
		(*n)++;
		have += PAGES_PER_2M;
	}
	while (n4k && have < target) {
		if (++tries > 100 * target)
			fatal("churn cannot place enough 4K pages: lower -f");
		r = order[nhuge + below(n4k)];
		first = r * PAGES_PER_2M + below(PAGES_PER_2M);
		want = 1 + below(o->max_run);
		if (want > target - have)
			want = target - have;
		for (len = 0; len < want && (first + len) / PAGES_PER_2M == r &&
		     !taken[first + len]; len++)
			taken[first + len] = 1;
		if (!len)
			continue;
		if (*n == cap) {
			cap *= 2;
			ops = realloc(ops, cap * sizeof(*ops));
			if (!ops)
				fatal("out of memory");
		}
		ops[*n].first = first;
		ops[*n].count = len;
		ops[*n].level = 0;
		(*n)++;
		have += len;
		runs++;
	}
	for (i = 0; i < *n; i++) {
		hash = fnv1a(hash, ops[i].first);
		hash = fnv1a(hash, ops[i].count);
		hash = fnv1a(hash, ops[i].level);
	}
	printf("churnplan L%lu huge=%lu runs=%lu pages4k=%lu hash=%#llx\n", lifetime, nhuge, runs,
	       have - nhuge * PAGES_PER_2M, hash);
	free(order);
	free(taken);
	return ops;
}

static void churn_convert(unsigned long lifetime, const struct churn_op *ops, unsigned long n,
			  bool to_private)
{
	unsigned long long t0, pages = 0;
	struct run run;
	unsigned long i;

	t0 = now_ns();
	for (i = 0; i < n; i++) {
		run.first = ops[i].first;
		run.count = ops[i].count;
		convert_range(&run, ops[i].level, to_private);
		pages += ops[i].level ? ops[i].count * PAGES_PER_2M : ops[i].count;
	}
	printf("churnrate L%lu dir=%s calls=%lu pages=%llu ns=%llu\n", lifetime,
	       to_private ? "private" : "shared", n, pages, now_ns() - t0);
}

static void run_churn(const struct options *o)
{
	unsigned long lifetime, n, r, from;
	struct churn_op *ops;
	char label[32];
	char *raw;

	churning = true;
	npages = o->pool_mb * (1UL << 20) / SZ_4K;
	nregions = npages / PAGES_PER_2M;
	alloc_books();
	printf("churn version=1 policy=%s seed=%llu pool_mb=%lu regions=%lu pages=%lu",
	       o->policy ? o->policy : "-", o->seed, o->pool_mb, nregions, npages);
	printf(" lifetimes=%lu percent=%lu max_run=%lu huge_every=%d runs_every=%d\n",
	       o->lifetimes, o->percent, o->max_run, CHURN_HUGE_EVERY, CHURN_4K_EVERY);
	snapshot("L0");
	for (lifetime = 1; lifetime <= o->lifetimes; lifetime++) {
		raw = map_pool();
		for (from = 0, r = 1; r <= nregions; r++)
			if (r == nregions || region_pfn[r] != region_pfn[r - 1] + PAGES_PER_2M) {
				printf("churnpool L%lu %lu %lu %llu\n", lifetime, from, r - from,
				       region_pfn[from]);
				from = r;
			}
		ops = churn_plan(o, lifetime, &n);
		churn_convert(lifetime, ops, n, true);
		snprintf(label, sizeof(label), "L%lu-private", lifetime);
		snap_meminfo(label);
		snap_vmstat(label);
		snap_stats(label);
		churn_convert(lifetime, ops, n, false);
		for (r = 0; r < nregions; r++)
			if (region_private[r] || region_huge[r])
				fatal("bench bookkeeping: a churn page is still private");
		if (munmap(raw, npages * SZ_4K + SZ_2M))
			fatal("cannot unmap the churn pool");
		free(ops);
		snprintf(label, sizeof(label), "L%lu", lifetime);
		snapshot(label);
	}
}

static void check_module(const struct options *o)
{
	struct snp_host_status st;
	unsigned long long done;
	char why[160];
	int ret;

	memset(&st, 0, sizeof(st));
	if (ioctl(dev, SNP_HOST_GET_STATUS, &st))
		fatal("SNP_HOST_GET_STATUS failed");
	status_flags = st.flags;
	printf("status backend=%s directmap_policy=%u policy_name=%s",
	       st.backend == SNP_HOST_BACKEND_HARDWARE ? "hardware" : "emulated",
	       st.directmap_policy,
	       st.directmap_policy < 4 ? policy_names[st.directmap_policy] : "unknown");
	printf(" flags=%u kernel_hooks=%d user_wp=%d\n", st.flags,
	       !!(st.flags & SNP_HOST_FLAG_KERNEL_HOOKS), !!(st.flags & SNP_HOST_FLAG_USER_WP));
	have_policy = st.directmap_policy != 0;
	if (!have_policy) {
		report_missing("directmap_policy",
			       "the module reports no direct-map policy (status.directmap_policy = 0): directmap= was ignored; its direct-map counters are not printed");
	} else if (o->policy && (st.directmap_policy >= 4 ||
				 strcmp(o->policy, policy_names[st.directmap_policy]))) {
		printf("error the module runs policy %u, not directmap=%s\n",
		       st.directmap_policy, o->policy);
		fatal("stopping: the numbers would be attributed to the wrong policy");
	}

	/* An empty range converts nothing; an unknown ioctl says ENOTTY. */
	ret = range_ioctl(0, 0, 0, false, &done);
	have_range = ret != -ENOTTY;
	if (!have_range) {
		snprintf(why, sizeof(why),
			 "the module does not know SNP_HOST_CONVERT_RANGE (%s): the workload goes through the per-page ioctls and no range rate is printed",
			 strerror(-ret));
		report_missing("convert_range", why);
	}
	printf("probe convert_range npages=0: %s\n", ret ? strerror(-ret) : "ok");
}

/* At the end the module must count no private page: everything went back. */
static void check_all_shared(void)
{
	__u64 words[STATS_WORDS];

	if (ioctl(dev, SNP_HOST_GET_STATS, words))
		fatal("SNP_HOST_GET_STATS failed");
	if (words[STAT_PRIVATE_4K] || words[STAT_PRIVATE_2M]) {
		printf("error at the end the module counts %llu 4K, %llu 2M private pages\n",
		       (unsigned long long)words[STAT_PRIVATE_4K],
		       (unsigned long long)words[STAT_PRIVATE_2M]);
		status = 1;
	}
}

static void bad_usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-p policy] [-s seed] [-m pool MiB] [-f phase-2 %%] [-r max run] [-k kept regions] [-F fault-phase regions] [-R fault-phase runs] [-C churn lifetimes]\n",
		argv0);
	exit(2);
}

static unsigned long long number(const char *s, const char *argv0)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (!*s || *end)
		bad_usage(argv0);
	return v;
}

int main(int argc, char **argv)
{
	struct options o = { .seed = 1, .pool_mb = 1024, .percent = 25, .max_run = 32,
			     .fault_regions = 32, .fault_runs = 5 };
	struct run *p1, *p2, *p3;
	unsigned long n1, n2, n3, i;
	int opt;

	while ((opt = getopt(argc, argv, "p:s:m:f:r:k:F:R:C:")) != -1) {
		switch (opt) {
		case 'p':
			o.policy = optarg;
			break;
		case 's':
			o.seed = number(optarg, argv[0]);
			break;
		case 'm':
			o.pool_mb = number(optarg, argv[0]);
			break;
		case 'f':
			o.percent = number(optarg, argv[0]);
			break;
		case 'r':
			o.max_run = number(optarg, argv[0]);
			break;
		case 'k':
			o.kept = number(optarg, argv[0]);
			break;
		case 'F':
			o.fault_regions = number(optarg, argv[0]);
			break;
		case 'R':
			o.fault_runs = number(optarg, argv[0]);
			break;
		case 'C':
			o.lifetimes = number(optarg, argv[0]);
			break;
		default:
			bad_usage(argv[0]);
		}
	}
	if (o.pool_mb < 2 || o.pool_mb % 2 || !o.max_run || o.percent > 80 ||
	    !o.fault_regions || o.fault_regions > 1024 || !o.fault_runs || o.fault_runs > 100)
		bad_usage(argv[0]);
	/* Beyond 25 %, the 4K runs would have to fill their regions almost whole. */
	if (o.lifetimes && (o.lifetimes > 1000 || o.percent > 25 || o.pool_mb < 64))
		bad_usage(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	rng_state = o.seed;

	dev = open("/dev/snp_host", O_RDWR);
	if (dev < 0) {
		printf("error cannot open /dev/snp_host: %s\n", strerror(errno));
		return 2;
	}
	check_module(&o);
	if (o.lifetimes) {
		if (!have_range)
			fatal("the churn workload needs SNP_HOST_CONVERT_RANGE");
		run_churn(&o);
		check_all_shared();
		printf("done status=%d\n", status);
		return status;
	}
	setup_pool(o.pool_mb);
	if (!o.kept)
		o.kept = nregions / 8;
	if (o.kept >= nregions)
		bad_usage(argv[0]);

	pick_kept(o.kept);
	p1 = plan_phase1(&n1);
	printf("bench version=1 policy=%s seed=%llu pool_mb=%lu regions=%lu pages=%lu",
	       o.policy ? o.policy : "-", o.seed, o.pool_mb, nregions, npages);
	printf(" kept=%lu percent=%lu max_run=%lu fault_regions=%lu fault_runs=%lu\n", o.kept,
	       o.percent, o.max_run, o.fault_regions, o.fault_runs);

	snapshot("before");

	convert("phase1", p1, n1, 0, true, false);
	snapshot("phase1");

	/* Planned now: phase 2 skips the pages phase 1 made private. */
	p2 = plan_phase2(npages * o.percent / 100, o.max_run, &n2);
	printf("plan phase2 runs=%lu mean_run=%.2f\n", n2,
	       n2 ? (double)(npages * o.percent / 100 - n1) / n2 : 0.0);
	convert("phase2", p2, n2, 0, true, false);
	snapshot("phase2-page");
	convert("phase2-restore", p2, n2, 0, false, false);
	snapshot("phase2-restored");
	convert("phase2", p2, n2, 0, true, true);
	snapshot("phase2");

	p3 = plan_phase3(&n3);
	convert("phase3", p3, n3, 1, true, false);
	snapshot("phase3");

	/* Phase 2's runs first, timed apart: the same pages as the per-page restore. */
	convert("phase4-runs", p2, n2, 0, false, true);
	convert("phase4-singles", p1, n1, 0, false, true);
	convert("phase4-2m", p3, n3, 1, false, true);
	snapshot("phase4");

	/*
	 * After phase 4's snapshot, so that nothing it does shows in phases
	 * 1-4; its own pages are shared again when it returns.
	 */
	fault_phase(o.fault_regions, o.fault_runs);

	for (i = 0; i < nregions; i++)
		if (region_private[i] || region_huge[i])
			fatal("bench bookkeeping: a page is still private after phase 4");
	check_all_shared();
	printf("done status=%d\n", status);
	return status;
}
