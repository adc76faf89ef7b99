// SPDX-License-Identifier: GPL-2.0
/*
 * Hostile input at /dev/snp_host: a seeded, time-bounded ABI fuzzer.
 *
 * It throws random ioctl numbers (the real ones, the real type and number
 * with a wrong size or direction, other numbers of type 0xB9, anything),
 * random argument pointers (NULL, unmapped, kernel, non-canonical,
 * misaligned, read-only, straddling an unmapped page, inside a guest page)
 * and random struct contents (addresses of every kind, misaligned, huge and
 * overflowing npages, hva + npages * size wrapping, reserved bits, bad
 * levels, flags, ASIDs and GPAs) at the module, first from one thread, with
 * the module's state compared before and after every call, then from
 * several threads while another one closes and re-opens the file under
 * them.
 *
 * Every call must succeed or fail with an errno the ABI documents for that
 * ioctl (Documentation/snp_host.rst, "User interface"; snp_host/file.rs):
 *
 *   GET_STATUS, GET_STATS,         EFAULT (bad pointer)
 *   GET_FAULT_STATS, GET_KVM_STATS
 *   LOOKUP                         EFAULT (bad pointer, unmapped address),
 *                                  EINVAL (reserved bits)
 *   MAKE_PRIVATE                   EINVAL, EFAULT, EBUSY (already assigned,
 *                                  RMP busy), ENOMEM (RLIMIT_MEMLOCK,
 *                                  allocation), EPERM (immutable entry),
 *                                  EIO (RMP refuses), ENODEV (hardware only)
 *   MAKE_SHARED, PSMASH            as MAKE_PRIVATE, and ENOENT (not assigned
 *                                  by this file at that level)
 *   CONVERT_RANGE                  the union of MAKE_PRIVATE and MAKE_SHARED
 *                                  (EINTR only when killed, which we are not)
 *   any other number               ENOTTY
 *
 * and, while the file is being closed under the caller, EBADF from the
 * kernel.  EPERM from another address space is owner_test's business.
 *
 * A failed call changes nothing (the ABI's promise): GET_STATS,
 * GET_FAULT_STATS and GET_KVM_STATS, LOOKUP of the fuzzer's pages that the
 * call names and of a sample, VmPin and DirectMap* must be the same after
 * it.  The one failure that may change state by design is CONVERT_RANGE
 * with done > 0: exactly pages [0, done) changed.  Successful calls are
 * tracked in a model of the fuzzer's pages, compared with LOOKUP and the
 * counters, and undone at the end; then every page is shared, the counters
 * are back where they started and VmPin is back to its start.
 *
 * Environment: SNP_FUZZ_SEED (default: from the clock, printed),
 * SNP_FUZZ_SECONDS (per phase, default 3), SNP_FUZZ_CALLS (per phase and
 * thread, default unbounded), SNP_FUZZ_THREADS (default 3).  `make check
 * FUZZ_SECONDS=600` runs a long one.
 *
 * Immutable requests are only sent where they cannot succeed: on the
 * emulated RMP an immutable page can never be returned (leak_test), and a
 * fuzzer must not leak.  (A struct read from a pool page is whatever the
 * page holds; the concurrent phase therefore never converts to private
 * with one, since another thread may have left immutable set there.)
 *
 * Every module bug the fuzzer found has a minimal reproducer at the end of
 * this file (found.*).  The fixed ones are plain regression tests; one
 * still open is recognised by its signature (known_bug()), counted and
 * printed as "KNOWN BUG" instead of failing the run, and its reproducer is
 * marked XFAIL: fixing the module turns it into XPASS, which fails, so that
 * the mark and the signature go too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "snp_host_check.h"

#define POOL_PAGES	48	/* 4K pages, never in a THP */
#define MAX_THPS	2
#define MAX_PAGES	(POOL_PAGES + MAX_THPS * PAGES_PER_2M)
#define MAX_THREADS	8
#define FUZZ_FD		200	/* the fd number the concurrent phase shares */
#define SAMPLE		4	/* random pool pages LOOKUPed around a call */
#define LOG_MAX		5	/* problems logged in full per kind */
#define MAX_ERRNO	134
#define KNOWN_BUGS	1

/* The commands, indexed; C_UNKNOWN is every other number. */
enum {
	C_STATUS, C_LOOKUP, C_PRIVATE, C_SHARED, C_PSMASH, C_RANGE,
	C_STATS, C_FSTATS, C_KSTATS, C_UNKNOWN, NCMD
};

#define B(e)		(1ULL << (e))
#define E_GET		B(EFAULT)
#define E_LOOKUP	(B(EFAULT) | B(EINVAL))
#define E_PRIVATE	(B(EINVAL) | B(EFAULT) | B(EBUSY) | B(ENOMEM) | \
			 B(EPERM) | B(EIO))
#define E_SHARED	(E_PRIVATE | B(ENOENT))

static const struct cmd_info {
	const char *name;
	unsigned int nr;
	unsigned int size;
	unsigned long long allowed;	/* bit e: errno e is documented */
	bool mutates;
} cmds[NCMD] = {
	[C_STATUS] = { "GET_STATUS", SNP_HOST_GET_STATUS,
		       sizeof(struct snp_host_status), E_GET, false },
	[C_LOOKUP] = { "LOOKUP", SNP_HOST_LOOKUP,
		       sizeof(struct snp_host_page), E_LOOKUP, false },
	[C_PRIVATE] = { "MAKE_PRIVATE", SNP_HOST_MAKE_PRIVATE,
			sizeof(struct snp_host_page), E_PRIVATE, true },
	[C_SHARED] = { "MAKE_SHARED", SNP_HOST_MAKE_SHARED,
		       sizeof(struct snp_host_page), E_SHARED, true },
	[C_PSMASH] = { "PSMASH", SNP_HOST_PSMASH,
		       sizeof(struct snp_host_page), E_SHARED, true },
	[C_RANGE] = { "CONVERT_RANGE", SNP_HOST_CONVERT_RANGE,
		      sizeof(struct snp_host_range), E_SHARED, true },
	[C_STATS] = { "GET_STATS", SNP_HOST_GET_STATS,
		      sizeof(struct snp_host_stats), E_GET, false },
	[C_FSTATS] = { "GET_FAULT_STATS", SNP_HOST_GET_FAULT_STATS,
		       sizeof(struct snp_host_fault_stats), E_GET, false },
	[C_KSTATS] = { "GET_KVM_STATS", SNP_HOST_GET_KVM_STATS,
		       sizeof(struct snp_host_kvm_stats), E_GET, false },
	[C_UNKNOWN] = { "other numbers", 0, 0, B(ENOTTY), false },
};

/*
 * Commands the VFS answers itself before the driver sees them
 * (do_vfs_ioctl()); a random number must not be one of them.
 */
static const unsigned int vfs_cmds[] = {
	0x5451 /* FIOCLEX */, 0x5450 /* FIONCLEX */, 0x5421 /* FIONBIO */,
	0x5452 /* FIOASYNC */, 0x5460 /* FIOQSIZE */, 0x541b /* FIONREAD */,
	0xc0045877 /* FIFREEZE */, 0xc0045878 /* FITHAW */,
	0xc020660b /* FS_IOC_FIEMAP */, 0x2 /* FIGETBSZ */,
	0x40049409 /* FICLONE */, 0x4020940d /* FICLONERANGE */,
	0xc0189436 /* FIDEDUPERANGE */, 0x80086601 /* FS_IOC_GETFLAGS */,
	0x40086602 /* FS_IOC_SETFLAGS */, 0x801c581f /* FS_IOC_FSGETXATTR */,
	0x401c5820 /* FS_IOC_FSSETXATTR */, 0x80111500 /* FS_IOC_GETFSUUID */,
	0x80811501 /* FS_IOC_GETFSSYSFSPATH */,
};

/* Where an address (the argument, or an hva in it) points. */
enum {
	A_POOL, A_POOL_MISALIGNED, A_THP, A_HOLE, A_LOW, A_USER_TOP, A_KERNEL,
	A_NONCANON, A_RO, A_SHARED, A_FILE, A_PROTNONE, A_VDSO, A_WRAP,
	A_RANDOM, A_VALID, A_VALID_MISALIGNED, A_STRADDLE, NCLASS
};

static const char *const class_names[NCLASS] = {
	"pool", "pool+misaligned", "thp", "hole", "low", "user-top", "kernel",
	"non-canonical", "read-only", "shared-anon", "file", "prot-none",
	"vdso", "wrap", "random", "valid", "valid+misaligned", "straddle",
};

/* The fuzzer's memory, set up once by the fixture, shared by the threads. */
struct mem {
	char *pool;			/* POOL_PAGES 4K pages */
	struct thp thp[MAX_THPS];
	int nthp;
	int npages;			/* pool pages + THP pages */
	char *ro, *shared, *file, *protnone, *hole, *vdso;
	unsigned long user_top;
	bool hole_ok, top_ok;
	__u32 max_asid;
	int hardware;
};

/* What the fuzzer believes of each of its pages (index: pool, then THPs). */
enum { SHARED = 0, PRIV_4K = 1, PRIV_2M = 2 };

struct counts {
	atomic_ullong calls[NCMD];
	atomic_ullong ok[NCMD];
	atomic_ullong err[NCMD][MAX_ERRNO + 1];
	atomic_ullong bad_errno;
	atomic_ullong state_changed;
	atomic_ullong known_bug[KNOWN_BUGS];
	atomic_ullong model_bad;
	atomic_ullong checks;
	atomic_ullong partial;
};

/* One thread's generator: its RNG and its own argument pages. */
struct gen {
	__u64 rng;
	char *buf;		/* a 4K scratch page: the valid argument */
	char *ro;		/* a read-only page the argument is copied to */
	char *edge;		/* a page followed by an unmapped one */
	const struct mem *m;
	const unsigned char *state;	/* the model, to aim at private pages; or NULL */
	/* No A_HOLE (another thread's mmap may fill it), no pool struct to private. */
	bool concurrent;
};

/* One generated call. */
struct call {
	int c;			/* C_*: the command the number means */
	unsigned long req;	/* the number passed to ioctl() */
	int arg_class;
	void *arg;
	int hva_class;
	union {
		struct snp_host_page page;
		struct snp_host_range range;
		unsigned char raw[256];
	} in;
};

static __u64 next(struct gen *g)
{
	/* splitmix64: good enough, and the same everywhere for a seed. */
	__u64 z = (g->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static __u64 below(struct gen *g, __u64 n)
{
	return n ? next(g) % n : 0;
}

static bool chance(struct gen *g, int percent)
{
	return below(g, 100) < (__u64)percent;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long env_ll(const char *name, long long def)
{
	const char *s = getenv(name);

	return s && *s ? strtoll(s, NULL, 0) : def;
}

static const char *errno_name(int e)
{
	static const char *const names[] = {
		[EPERM] = "EPERM", [ENOENT] = "ENOENT", [EINTR] = "EINTR",
		[EIO] = "EIO", [EBADF] = "EBADF", [EAGAIN] = "EAGAIN",
		[ENOMEM] = "ENOMEM", [EFAULT] = "EFAULT", [EBUSY] = "EBUSY",
		[ENODEV] = "ENODEV", [EINVAL] = "EINVAL", [ENOTTY] = "ENOTTY",
		[ENOSPC] = "ENOSPC", [ERANGE] = "ERANGE",
		[EOVERFLOW] = "EOVERFLOW", [EOPNOTSUPP] = "EOPNOTSUPP",
	};
	static __thread char buf[16];

	if (e >= 0 && e < (int)ARRAY_SIZE(names) && names[e])
		return names[e];
	snprintf(buf, sizeof(buf), "errno %d", e);
	return buf;
}

/* Whether an unmapped address is still unmapped (mincore() says ENOMEM). */
static bool unmapped(unsigned long addr)
{
	unsigned char vec;

	return mincore((void *)(addr & ~(SZ_4K - 1)), SZ_4K, &vec) &&
	       errno == ENOMEM;
}

/* The index of the pool or THP page at @hva, -1 if it is none of them. */
static int page_index(const struct mem *m, unsigned long hva)
{
	unsigned long p = (unsigned long)m->pool;
	int i;

	if (hva >= p && hva < p + POOL_PAGES * SZ_4K)
		return (hva - p) / SZ_4K;
	for (i = 0; i < m->nthp; i++) {
		p = (unsigned long)m->thp[i].base;
		if (hva >= p && hva < p + SZ_2M)
			return POOL_PAGES + i * PAGES_PER_2M + (hva - p) / SZ_4K;
	}
	return -1;
}

static char *page_addr(const struct mem *m, int i)
{
	if (i < POOL_PAGES)
		return m->pool + i * SZ_4K;
	i -= POOL_PAGES;
	return m->thp[i / PAGES_PER_2M].base + (i % PAGES_PER_2M) * SZ_4K;
}

/*
 * An address of class @cls; @align is the alignment the call needs (4K or
 * 2M) for the aligned classes.  Never an address of memory the fuzzer
 * uses otherwise (its stack, heap, argument pages): those must not become
 * guest pages under it.
 */
static unsigned long pick_addr(struct gen *g, int cls, unsigned long align)
{
	const struct mem *m = g->m;
	unsigned long a;

	switch (cls) {
	case A_POOL:
		if (align == SZ_2M && m->nthp)
			return (unsigned long)m->thp[below(g, m->nthp)].base;
		return (unsigned long)m->pool + below(g, POOL_PAGES) * SZ_4K;
	case A_POOL_MISALIGNED:
		return (unsigned long)m->pool + below(g, POOL_PAGES) * SZ_4K +
		       1 + below(g, SZ_4K - 1);
	case A_THP:
		if (!m->nthp)
			return (unsigned long)m->pool;
		a = (unsigned long)m->thp[below(g, m->nthp)].base;
		return a + below(g, PAGES_PER_2M) * SZ_4K;
	case A_HOLE:
		if (m->hole_ok && !g->concurrent && unmapped((unsigned long)m->hole))
			return (unsigned long)m->hole + below(g, 2 * SZ_2M);
		return below(g, 0x10000);
	case A_LOW:
		return below(g, 0x10000);	/* below mmap_min_addr */
	case A_USER_TOP:
		return m->top_ok ? m->user_top + below(g, SZ_4K) : 0;
	case A_KERNEL:
		switch (below(g, 4)) {
		case 0:
			return 0xffff888000000000UL + below(g, 1UL << 32) * SZ_4K;
		case 1:
			return 0xffffffff81000000UL + below(g, 1UL << 24);
		case 2:
			return 0xffffffffff600000UL;	/* vsyscall */
		default:	/* the last page, which ends at 2^64 */
			return chance(g, 50) ? -SZ_4K : -SZ_4K + below(g, SZ_4K);
		}
	case A_NONCANON:
		a = 0x0000800000000000UL + below(g, 0xffff000000000000UL);
		return a & ~(align - 1);
	case A_RO:
		return (unsigned long)m->ro;
	case A_SHARED:
		return (unsigned long)m->shared;
	case A_FILE:
		return (unsigned long)m->file;
	case A_PROTNONE:
		return (unsigned long)m->protnone;
	case A_VDSO:
		return (unsigned long)m->vdso;
	case A_WRAP:
		return -(below(g, 64) + 1) * align;
	default:
		a = next(g);
		/* Random bits almost never map; make sure. */
		if (a < 0x800000000000UL && !unmapped(a))
			a |= 0x8000000000000000UL;
		return a;
	}
}

static int pick_hva_class(struct gen *g)
{
	static const int classes[] = {
		A_POOL, A_POOL, A_POOL, A_POOL, A_POOL, A_THP, A_THP,
		A_POOL_MISALIGNED, A_HOLE, A_LOW, A_USER_TOP, A_KERNEL,
		A_NONCANON, A_RO, A_SHARED, A_FILE, A_PROTNONE, A_VDSO, A_WRAP,
		A_RANDOM,
	};

	return classes[below(g, ARRAY_SIZE(classes))];
}

static __u64 pick_gpa(struct gen *g, unsigned long align)
{
	switch (below(g, 8)) {
	case 0:
		return 0;
	case 1:
		return (1ULL << 51) - align;		/* the last valid one */
	case 2:
		return 1ULL << 51;			/* beyond the RMP field */
	case 3:
		return -(__u64)align;
	case 4:
		return below(g, 1ULL << 51) | 1;	/* misaligned */
	case 5:
		return next(g);
	default:
		return below(g, 1ULL << 40) & ~(__u64)(align - 1);
	}
}

static __u32 pick_asid(struct gen *g)
{
	switch (below(g, 8)) {
	case 0:
		return 0;
	case 1:
		return g->m->max_asid;
	case 2:
		return g->m->max_asid + 1;
	case 3:
		return 0xffffffff;
	case 4:
		return next(g);
	default:
		return 1 + below(g, g->m->max_asid);
	}
}

static __u8 pick_level(struct gen *g)
{
	switch (below(g, 10)) {
	case 0:
		return 2 + below(g, 254);
	case 1: case 2: case 3:
		return SNP_HOST_LEVEL_2M;
	default:
		return SNP_HOST_LEVEL_4K;
	}
}

static __u8 pick_flag(struct gen *g)
{
	return chance(g, 90) ? below(g, 2) : 2 + below(g, 254);
}

static void pick_reserved(struct gen *g, __u64 *r, int n)
{
	if (chance(g, 8))
		r[below(g, n)] = 1ULL << below(g, 64);
}

/*
 * Whether a request could be valid enough to reach the RMP: it names a
 * page of the fuzzer, or of its read-only mapping (known bug 2 lets some
 * of those through).
 */
static bool reaches_rmp(int hva_class, bool reserved, __u8 level, __u32 asid)
{
	return (hva_class == A_POOL || hva_class == A_THP ||
		hva_class == A_POOL_MISALIGNED || hva_class == A_RO) &&
	       !reserved && level <= 1 && asid;
}

/*
 * A page of the fuzzer for a well-formed request of @level: for a request
 * that returns a page, now and then one the model says is private.
 */
static unsigned long pick_own(struct gen *g, int shape, __u8 level, int *cls)
{
	const struct mem *m = g->m;
	int i, want = level == 1 ? 2 : 1;

	*cls = level == 1 ? A_THP : A_POOL;
	if (g->state && shape != C_PRIVATE && chance(g, 70)) {
		for (i = below(g, m->npages); i < m->npages; i++) {
			if (g->state[i] != want)
				continue;
			/* A 2M page is named by its first page. */
			if (want == 2)
				i -= (i - POOL_PAGES) % PAGES_PER_2M;
			return (unsigned long)page_addr(m, i);
		}
	}
	if (level == 1 && m->nthp)
		return (unsigned long)m->thp[below(g, m->nthp)].base;
	if (m->nthp && chance(g, 30))
		return pick_addr(g, A_THP, SZ_4K);
	return pick_addr(g, A_POOL, SZ_4K);
}

/*
 * A struct snp_host_page for command @shape: a third of the time
 * well-formed for a page of the fuzzer (and then, half of the time, with
 * one field made hostile: the inputs nearest to the valid ones), otherwise
 * every field picked on its own.
 */
static void gen_page(struct gen *g, struct call *k, int shape)
{
	struct snp_host_page *p = &k->in.page;
	unsigned long align;

	memset(p, 0, sizeof(*p));
	if (chance(g, 35)) {
		p->level = shape == C_PSMASH ? 1 : g->m->nthp && chance(g, 25);
		p->hva = pick_own(g, shape, p->level, &k->hva_class);
		align = p->level == 1 ? SZ_2M : SZ_4K;
		p->gpa = below(g, 1ULL << 40) & ~(__u64)(align - 1);
		p->asid = 1 + below(g, g->m->max_asid);
		switch (chance(g, 50) ? below(g, 7) : 7) {
		case 0:
			k->hva_class = pick_hva_class(g);
			p->hva = pick_addr(g, k->hva_class, align);
			break;
		case 1:
			p->gpa = pick_gpa(g, align);
			break;
		case 2:
			p->asid = pick_asid(g);
			break;
		case 3:
			p->level = pick_level(g);
			break;
		case 4:
			p->immutable = pick_flag(g);
			break;
		case 5:
			pick_reserved(g, p->reserved, 2);
			p->reserved[below(g, 2)] |= 1ULL << below(g, 64);
			break;
		case 6:
			p->hva += 1 + below(g, align - 1);
			k->hva_class = A_POOL_MISALIGNED;
			break;
		}
	} else {
		p->level = shape == C_PSMASH && chance(g, 80) ? 1 : pick_level(g);
		align = p->level == 1 ? SZ_2M : SZ_4K;
		k->hva_class = pick_hva_class(g);
		p->hva = pick_addr(g, k->hva_class, align);
		p->gpa = pick_gpa(g, align);
		p->asid = pick_asid(g);
		p->immutable = pick_flag(g);
		pick_reserved(g, p->reserved, 2);
	}
	/* Out fields: the module must not care what they hold on input. */
	if (chance(g, 20)) {
		p->assigned = next(g);
		p->validated = next(g);
		p->pfn = next(g);
	}
	if (p->immutable == 1 &&
	    reaches_rmp(k->hva_class, p->reserved[0] | p->reserved[1],
			p->level, p->asid))
		p->immutable = 0;
}

static __u64 pick_npages(struct gen *g, unsigned long hva, unsigned long size)
{
	switch (below(g, 12)) {
	case 0:
		return 0;
	case 1:
		return 1ULL << (40 + below(g, 12));	/* huge */
	case 2:
		return (1ULL << 52) + below(g, 16);	/* npages * 4K overflows */
	case 3:
		return -1ULL - below(g, 16);
	case 4:
		return (-(__u64)hva) / size + 1 + below(g, 4);	/* hva + bytes wraps */
	case 5:
		return (-(__u64)hva) / size;	/* ends exactly at 2^64 */
	case 6:
		return POOL_PAGES + 1 + below(g, 16);	/* beyond the pool */
	default:
		return 1 + below(g, size == SZ_2M ? 2 : 16);
	}
}

static void gen_range(struct gen *g, struct call *k)
{
	struct snp_host_range *r = &k->in.range;
	unsigned long size;

	memset(r, 0, sizeof(*r));
	if (chance(g, 35)) {
		/* Well-formed, from a page of the fuzzer, maybe running past its end. */
		r->to_private = below(g, 2);
		r->level = g->m->nthp && chance(g, 20);
		size = r->level == 1 ? SZ_2M : SZ_4K;
		r->hva = pick_own(g, r->to_private ? C_PRIVATE : C_SHARED, r->level,
				  &k->hva_class);
		r->npages = 1 + below(g, r->level ? 2 : 24);
		r->gpa = below(g, 1ULL << 40) & ~(__u64)(size - 1);
		r->asid = 1 + below(g, g->m->max_asid);
		switch (chance(g, 50) ? below(g, 6) : 6) {
		case 0:
			r->npages = pick_npages(g, r->hva, size);
			break;
		case 1:
			r->gpa = pick_gpa(g, size);
			break;
		case 2:
			r->asid = pick_asid(g);
			break;
		case 3:
			r->level = pick_level(g);
			break;
		case 4:
			r->to_private = pick_flag(g);
			r->immutable = pick_flag(g);
			break;
		case 5:
			r->reserved0 = 1 + below(g, 255);
			pick_reserved(g, r->reserved, 2);
			break;
		}
	} else {
		r->level = pick_level(g);
		size = r->level == 1 ? SZ_2M : SZ_4K;
		k->hva_class = pick_hva_class(g);
		r->hva = pick_addr(g, k->hva_class, size);
		r->npages = pick_npages(g, r->hva, size);
		r->gpa = pick_gpa(g, size);
		r->asid = pick_asid(g);
		r->to_private = pick_flag(g);
		r->immutable = pick_flag(g);
		if (chance(g, 5))
			r->reserved0 = 1 + below(g, 255);
		pick_reserved(g, r->reserved, 2);
	}
	if (chance(g, 20))
		r->done = next(g);
	if (r->immutable == 1 && r->to_private == 1 &&
	    reaches_rmp(k->hva_class,
			r->reserved0 | r->reserved[0] | r->reserved[1],
			r->level, r->asid))
		r->immutable = 0;
}

static bool is_vfs_cmd(unsigned int nr)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(vfs_cmds); i++)
		if (vfs_cmds[i] == nr)
			return true;
	return false;
}

static int cmd_of(unsigned int nr)
{
	int c;

	for (c = 0; c < C_UNKNOWN; c++)
		if (cmds[c].nr == nr)
			return c;
	return C_UNKNOWN;
}

/* The ioctl number: real, near-real (wrong size or direction), or other. */
static unsigned long pick_req(struct gen *g, int *base)
{
	unsigned int nr;
	int c = below(g, C_UNKNOWN);

	*base = c;
	switch (below(g, 10)) {
	case 0:	/* right type and number, wrong size */
		nr = (cmds[c].nr & ~(_IOC_SIZEMASK << _IOC_SIZESHIFT)) |
		     ((below(g, 2) ? below(g, 1 << _IOC_SIZEBITS) :
		       cmds[c].size + below(g, 17) - 8) & _IOC_SIZEMASK)
			<< _IOC_SIZESHIFT;
		break;
	case 1:	/* right type, number and size, other direction */
		nr = (cmds[c].nr & ~(_IOC_DIRMASK << _IOC_DIRSHIFT)) |
		     below(g, 4) << _IOC_DIRSHIFT;
		break;
	case 2:	/* our type, any number */
		nr = _IOC(below(g, 4), SNP_HOST_IOCTL_TYPE, below(g, 256),
			  below(g, 512));
		break;
	case 3:	/* anything */
		nr = next(g);
		break;
	default:
		nr = cmds[c].nr;
		break;
	}
	if (is_vfs_cmd(nr))
		nr = cmds[c].nr;
	/* ioctl()'s cmd is an unsigned int: the upper half must not matter. */
	return chance(g, 5) ? nr | (next(g) << 32) : nr;
}

/* Copies the generated struct where the argument points, if it can. */
static void place_arg(struct gen *g, struct call *k)
{
	size_t len = sizeof(k->in), off;

	switch (k->arg_class) {
	case A_VALID:
		memcpy(g->buf, &k->in, len);
		k->arg = g->buf;
		break;
	case A_VALID_MISALIGNED:
		off = 1 + below(g, 7);
		memcpy(g->buf + off, &k->in, len);
		k->arg = g->buf + off;
		break;
	case A_RO:
		mprotect(g->ro, SZ_4K, PROT_READ | PROT_WRITE);
		memcpy(g->ro, &k->in, len);
		mprotect(g->ro, SZ_4K, PROT_READ);
		k->arg = g->ro;
		break;
	case A_STRADDLE:
		/* The struct runs into the unmapped page after g->edge. */
		off = 1 + below(g, cmds[k->c == C_UNKNOWN ? C_RANGE : k->c].size - 1);
		memcpy(g->edge + SZ_4K - off, &k->in, off);
		k->arg = g->edge + SZ_4K - off;
		break;
	case A_POOL:
		/* Whatever a pool page holds; the kernel's write-back may be refused. */
		k->arg = page_addr(g->m, below(g, g->m->npages)) + below(g, 64) * 8;
		break;
	default:
		k->arg = (void *)pick_addr(g, k->arg_class, 8);
		break;
	}
}

static void gen_call(struct gen *g, struct call *k)
{
	static const int arg_classes[] = {
		A_VALID, A_VALID, A_VALID, A_VALID, A_VALID, A_VALID, A_VALID,
		A_VALID, A_VALID, A_VALID, A_VALID, A_VALID, A_VALID_MISALIGNED,
		A_RO, A_STRADDLE, A_LOW, A_KERNEL, A_NONCANON, A_PROTNONE,
		A_POOL, A_RANDOM, A_HOLE,
	};
	int base, shape;
	size_t i;

	memset(k, 0, sizeof(*k));
	k->req = pick_req(g, &base);
	k->c = cmd_of((unsigned int)k->req);
	k->hva_class = -1;
	/* A number that means nothing still gets the struct of its base. */
	shape = k->c == C_UNKNOWN ? base : k->c;
	switch (shape) {
	case C_LOOKUP: case C_PRIVATE: case C_SHARED: case C_PSMASH:
		gen_page(g, k, shape);
		break;
	case C_RANGE:
		gen_range(g, k);
		break;
	default:
		for (i = 0; i < sizeof(k->in.raw); i++)
			k->in.raw[i] = next(g);
		break;
	}
	k->arg_class = arg_classes[below(g, ARRAY_SIZE(arg_classes))];
	/*
	 * Concurrently, a pool page holds whatever another thread's struct or
	 * the module's write-back of it left there, which may name a page of
	 * the fuzzer with immutable set: such a page could never be returned.
	 * Requests that can make pages private read their struct from
	 * elsewhere then; the sequential phase, which knows the bytes, keeps
	 * them.
	 */
	if (g->concurrent && k->arg_class == A_POOL &&
	    (k->c == C_PRIVATE || k->c == C_RANGE))
		k->arg_class = A_VALID;
	place_arg(g, k);
}

static void describe(const struct call *k, char *buf, size_t n)
{
	const struct snp_host_page *p = &k->in.page;
	const struct snp_host_range *r = &k->in.range;
	int len;

	len = snprintf(buf, n, "%s req 0x%lx arg %s %p", cmds[k->c].name,
		       k->req, class_names[k->arg_class], k->arg);
	if (k->c == C_LOOKUP || k->c == C_PRIVATE || k->c == C_SHARED ||
	    k->c == C_PSMASH)
		snprintf(buf + len, n - len,
			 " {hva 0x%llx (%s) gpa 0x%llx asid %u level %u imm %u res 0x%llx,0x%llx}",
			 p->hva, class_names[k->hva_class], p->gpa, p->asid,
			 p->level, p->immutable, p->reserved[0], p->reserved[1]);
	else if (k->c == C_RANGE)
		snprintf(buf + len, n - len,
			 " {hva 0x%llx (%s) npages 0x%llx gpa 0x%llx asid %u level %u to_private %u imm %u res0 %u res 0x%llx,0x%llx}",
			 r->hva, class_names[k->hva_class], r->npages, r->gpa,
			 r->asid, r->level, r->to_private, r->immutable,
			 r->reserved0, r->reserved[0], r->reserved[1]);
}

/* Counts the outcome and checks the errno; true if it is documented. */
static bool record(struct counts *cnt, const struct call *k, int err,
		   bool concurrent, int hardware)
{
	unsigned long long allowed = cmds[k->c].allowed;

	atomic_fetch_add(&cnt->calls[k->c], 1);
	if (!err) {
		atomic_fetch_add(&cnt->ok[k->c], 1);
		return k->c != C_UNKNOWN;
	}
	atomic_fetch_add(&cnt->err[k->c][err > MAX_ERRNO ? MAX_ERRNO : err], 1);
	if (cmds[k->c].mutates && hardware)
		allowed |= B(ENODEV);
	if (concurrent)
		allowed |= B(EBADF);
	return err < 64 && (allowed & B(err));
}

/* Everything a failed call must leave as it was. */
struct state {
	struct snp_host_stats st;
	struct snp_host_fault_stats fst;
	struct snp_host_kvm_stats kst;
	int n;
	int idx[SAMPLE + 4];
	int lrc[SAMPLE + 4];
	struct snp_host_page look[SAMPLE + 4];
	long long vm_pin;
	long long dm[3];
};

static const char *const dm_names[3] = {
	"DirectMap4k", "DirectMap2M", "DirectMap1G"
};

static void state_take(int fd, const struct mem *m, const int *idx, int n,
		       struct state *s)
{
	int i;

	memset(s, 0, sizeof(*s));
	snp_get_stats(fd, &s->st);
	snp_get_fault_stats(fd, &s->fst);
	snp_ioctl(fd, SNP_HOST_GET_KVM_STATS, &s->kst);
	s->n = n;
	for (i = 0; i < n; i++) {
		s->idx[i] = idx[i];
		s->lrc[i] = snp_lookup(fd, page_addr(m, idx[i]), &s->look[i]);
	}
	s->vm_pin = proc_status_kb(0, "VmPin");
	for (i = 0; i < 3; i++)
		s->dm[i] = meminfo_read(dm_names[i]);
}

/* What differs between two states (state_diff()). */
enum {
	D_STATS = 1, D_FAULTS = 2, D_KVM = 4, D_LOOKUP = 8, D_VMPIN = 16, D_DM = 32
};

/*
 * Whether two LOOKUP answers for a page say the same.  The PFN behind a page
 * that is the host's may change between them without anyone's call (khugepaged
 * collapsing its THP, compaction migrating it): only a guest page's is fixed.
 */
static bool same_look(const struct snp_host_page *a, const struct snp_host_page *b)
{
	struct snp_host_page x = *a, y = *b;

	if (!x.assigned && !y.assigned) {
		x.pfn = 0;
		y.pfn = 0;
	}
	return !memcmp(&x, &y, sizeof(x));
}

/* Logs what differs (when @log); returns a mask of D_* for what does. */
static int state_diff(struct __test_metadata *_metadata, const struct state *a,
		      const struct state *b, bool log)
{
	int i, diff = 0;

	if (memcmp(&a->st, &b->st, sizeof(a->st))) {
		diff |= D_STATS;
		if (log)
			stats_diff(_metadata, &a->st, &b->st, "GET_STATS");
	}
	if (memcmp(&a->fst, &b->fst, sizeof(a->fst))) {
		diff |= D_FAULTS;
		if (log)
			fault_stats_diff(_metadata, &a->fst, &b->fst, "GET_FAULT_STATS");
	}
	if (memcmp(&a->kst, &b->kst, sizeof(a->kst))) {
		diff |= D_KVM;
		if (log)
			TH_LOG("GET_KVM_STATS changed");
	}
	for (i = 0; i < a->n; i++) {
		if (a->lrc[i] == b->lrc[i] && same_look(&a->look[i], &b->look[i]))
			continue;
		diff |= D_LOOKUP;
		if (!log)
			continue;
		TH_LOG("LOOKUP page %d: rc %d assigned/level/asid/pfn %u %u %u %#llx",
		       a->idx[i], a->lrc[i], a->look[i].assigned, a->look[i].level,
		       a->look[i].asid, (unsigned long long)a->look[i].pfn);
		TH_LOG("  then: rc %d assigned/level/asid/pfn %u %u %u %#llx",
		       b->lrc[i], b->look[i].assigned, b->look[i].level,
		       b->look[i].asid, (unsigned long long)b->look[i].pfn);
	}
	if (a->vm_pin != b->vm_pin) {
		diff |= D_VMPIN;
		if (log)
			TH_LOG("VmPin %lld -> %lld kB", a->vm_pin, b->vm_pin);
	}
	for (i = 0; i < 3; i++) {
		if (a->dm[i] == b->dm[i])
			continue;
		diff |= D_DM;
		if (log)
			TH_LOG("%s %lld -> %lld kB", dm_names[i], a->dm[i], b->dm[i]);
	}
	return diff;
}

/*
 * Whether only the fault counters of kernel accesses through user
 * addresses moved: what the module's write-back costs by design when the
 * argument lies in a pool page (refused in a guest page, splitting the THP
 * of one next to a guest page).
 */
static bool only_uaccess(const struct state *a, const struct state *b)
{
	struct snp_host_fault_stats x = a->fst, y = b->fst;

	x.user_faults = y.user_faults;
	x.thp_splits = y.thp_splits;
	x.uaccess_refused = y.uaccess_refused;
	x.gup_refused = y.gup_refused;
	return !memcmp(&x, &y, sizeof(x));
}

/* What the fuzz tests share: the memory, the counters, the model. */
struct fuzzer {
	struct env env;
	struct mem m;
	struct counts *cnt;
	unsigned char state[MAX_PAGES];
	struct state base;
	__u64 seed;
	double seconds;
	long long max_calls;
	int threads;
	int fd;
	__u32 policy;
	long long pins0;
	int logged;
};

FIXTURE(fuzz)
{
	struct fuzzer z;
};

static char *map_one(int prot, int flags, int fd)
{
	char *p = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0x5a, SZ_4K);
	if (prot != (PROT_READ | PROT_WRITE) && mprotect(p, SZ_4K, prot)) {
		munmap(p, SZ_4K);
		return NULL;
	}
	return p;
}

static __u32 read_max_asid(void)
{
	char *s = read_text(SNP_DEBUGFS_STATUS), *at;
	__u32 v = 0;

	at = s ? strstr(s, "max_asid: ") : NULL;
	if (at)
		v = strtoul(at + 10, NULL, 10);
	free(s);
	return v ? v : 16;
}

FIXTURE_SETUP(fuzz)
{
	struct fuzzer *fz = &self->z;
	struct snp_host_status status;
	struct mem *m = &fz->m;
	int i, memfd, all[MAX_PAGES];

	fz->env.fd = -1;
	fz->fd = -1;
	if (geteuid())
		SKIP(return, "needs root (the device)");
	if (access(SNP_MODULE_DIR, F_OK))
		SKIP(return, "snp_host.ko is not loaded");
	fz->env.fd = snp_open();
	ASSERT_LE(0, fz->env.fd) TH_LOG("open: %s", strerror(-fz->env.fd));
	fz->env.debugfs = debugfs_mounted() && !access(SNP_DEBUGFS, F_OK);
	ASSERT_EQ(0, snp_get_status(fz->env.fd, &status));
	fz->policy = status.directmap_policy;
	m->hardware = status.backend == SNP_HOST_BACKEND_HARDWARE;
	m->max_asid = fz->env.debugfs ? read_max_asid() : 16;

	fz->seed = env_ll("SNP_FUZZ_SEED", 0);
	if (!fz->seed)
		fz->seed = (__u64)time(NULL) * 2654435761ULL ^ getpid();
	fz->seconds = env_ll("SNP_FUZZ_SECONDS", 3);
	fz->max_calls = env_ll("SNP_FUZZ_CALLS", 0);
	fz->threads = env_ll("SNP_FUZZ_THREADS", 3);
	if (fz->threads < 1 || fz->threads > MAX_THREADS)
		fz->threads = 3;

	m->pool = map_pages(POOL_PAGES);
	ASSERT_NE(NULL, m->pool);
	for (i = 0; i < MAX_THPS; i++)
		if (!thp_alloc(&m->thp[m->nthp]))
			m->nthp++;
	m->npages = POOL_PAGES + m->nthp * PAGES_PER_2M;
	m->ro = map_one(PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	m->shared = map_one(PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	m->protnone = map_one(PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	memfd = memfd_create("snp_fuzz", MFD_CLOEXEC);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, SZ_4K));
	m->file = map_one(PROT_READ | PROT_WRITE, MAP_PRIVATE, memfd);
	close(memfd);
	ASSERT_TRUE(m->ro && m->shared && m->protnone && m->file);
	/* A 4M hole: mapped and unmapped again, checked before each use. */
	m->hole = mmap(NULL, 2 * SZ_2M, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m->hole);
	munmap(m->hole, 2 * SZ_2M);
	m->hole_ok = unmapped((unsigned long)m->hole);
	m->user_top = 0x7ffffffff000UL;
	m->top_ok = unmapped(m->user_top);
	m->vdso = (char *)getauxval(AT_SYSINFO_EHDR);
	if (!m->vdso)
		m->vdso = m->ro;

	fz->cnt = calloc(1, sizeof(*fz->cnt));
	ASSERT_NE(NULL, fz->cnt);
	for (i = 0; i < m->npages; i++)
		all[i] = i;
	fz->pins0 = foll_pins_held();
	state_take(fz->env.fd, m, all, 0, &fz->base);
	ASSERT_LE(0, fz->base.vm_pin) TH_LOG("no VmPin in /proc/self/status");
	TH_LOG("seed 0x%llx, %.0f s per phase, %d threads (SNP_FUZZ_SEED, _SECONDS, _THREADS)",
	       (unsigned long long)fz->seed, fz->seconds, fz->threads);
	TH_LOG("%d pool pages + %d THPs, max_asid %u, directmap policy %u",
	       POOL_PAGES, m->nthp, m->max_asid, fz->policy);
}

FIXTURE_TEARDOWN(fuzz)
{
	struct fuzzer *fz = &self->z;
	int i;

	if (fz->fd >= 0)
		close(fz->fd);
	close(FUZZ_FD);
	if (fz->env.fd >= 0)
		close(fz->env.fd);
	for (i = 0; i < fz->m.nthp; i++)
		thp_free(&fz->m.thp[i]);
	free(fz->cnt);
}

static int gen_setup(struct gen *g, const struct mem *m, __u64 seed, bool concurrent)
{
	memset(g, 0, sizeof(*g));
	g->rng = seed;
	g->m = m;
	g->concurrent = concurrent;
	g->buf = map_one(PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	g->ro = map_one(PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	g->edge = mmap(NULL, 2 * SZ_4K, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!g->buf || !g->ro || g->edge == MAP_FAILED)
		return -ENOMEM;
	return munmap(g->edge + SZ_4K, SZ_4K) ? -errno : 0;
}

static void gen_free(struct gen *g)
{
	munmap(g->buf, SZ_4K);
	munmap(g->ro, SZ_4K);
	munmap(g->edge, SZ_4K);
}

/* The pages of the fuzzer a call names (its hva, and the range's ends). */
static int named_pages(const struct mem *m, const struct call *k, int *idx)
{
	unsigned long hva, last;
	int n = 0, i;

	if (k->c == C_RANGE) {
		hva = k->in.range.hva;
		last = hva + (k->in.range.npages - 1) *
			     (k->in.range.level == 1 ? SZ_2M : SZ_4K);
	} else if (k->c >= C_LOOKUP && k->c <= C_PSMASH) {
		hva = k->in.page.hva;
		last = hva;
	} else {
		return 0;
	}
	i = page_index(m, hva);
	if (i >= 0)
		idx[n++] = i;
	i = page_index(m, last);
	if (i >= 0 && (!n || idx[0] != i))
		idx[n++] = i;
	return n;
}

/*
 * Applies a successful conversion of the page at @hva to the model; false
 * if the model says it could not have succeeded.
 */
static bool model_apply(struct __test_metadata *_metadata, struct fuzzer *self,
			int c, unsigned long hva, __u8 level)
{
	int i = page_index(&self->m, hva), j, n = level == 1 ? PAGES_PER_2M : 1;
	unsigned char *s = self->state;
	int want_from, to;

	if (i < 0 || (level == 1 && i < POOL_PAGES)) {
		TH_LOG("%s succeeded at 0x%lx level %u, not a page of the fuzzer",
		       cmds[c].name, hva, level);
		return false;
	}
	switch (c) {
	case C_PRIVATE:
		want_from = SHARED;
		to = level == 1 ? PRIV_2M : PRIV_4K;
		break;
	case C_SHARED:
		want_from = level == 1 ? PRIV_2M : PRIV_4K;
		to = SHARED;
		break;
	default:	/* PSMASH */
		want_from = PRIV_2M;
		to = PRIV_4K;
		n = PAGES_PER_2M;
		break;
	}
	for (j = 0; j < n; j++) {
		if (s[i + j] != want_from) {
			TH_LOG("%s succeeded at 0x%lx level %u, but page %d was in state %d",
			       cmds[c].name, hva, level, i + j, s[i + j]);
			return false;
		}
	}
	for (j = 0; j < n; j++)
		s[i + j] = to;
	return true;
}

/* Counts the model's private pages: at 4K, and 2M pages. */
static void model_count(struct fuzzer *self, long long *n4k, long long *n2m)
{
	int i;

	*n4k = *n2m = 0;
	for (i = 0; i < self->m.npages; i++) {
		*n4k += self->state[i] == PRIV_4K;
		*n2m += self->state[i] == PRIV_2M;
	}
	*n2m /= PAGES_PER_2M;
}

/*
 * Compares the model with the module: the gauges, VmPin and (when @sweep)
 * LOOKUP of every page.  Returns the number of mismatches.
 */
static int model_check(struct __test_metadata *_metadata, struct fuzzer *self,
		       bool sweep, const char *when)
{
	struct snp_host_stats st;
	struct snp_host_page p;
	long long n4k, n2m, pin;
	int i, bad = 0, budget = LOG_MAX;

	model_count(self, &n4k, &n2m);
	snp_get_stats(self->env.fd, &st);
	if ((long long)(st.private_4k - self->base.st.private_4k) != n4k ||
	    (long long)(st.private_2m - self->base.st.private_2m) != n2m) {
		bad++;
		TH_LOG("%s: %lld 4K + %lld 2M more private than at the start, model %lld + %lld",
		       when, (long long)(st.private_4k - self->base.st.private_4k),
		       (long long)(st.private_2m - self->base.st.private_2m), n4k, n2m);
	}
	pin = proc_status_kb(0, "VmPin");
	if (pin != self->base.vm_pin + 4 * (n4k + n2m * PAGES_PER_2M)) {
		bad++;
		TH_LOG("%s: VmPin %lld kB, want %lld", when, pin,
		       self->base.vm_pin + 4 * (n4k + n2m * PAGES_PER_2M));
	}
	for (i = 0; sweep && i < self->m.npages; i++) {
		int want = self->state[i];
		int ret = snp_lookup(self->env.fd, page_addr(&self->m, i), &p);

		bool assigned = want != SHARED, huge = want == PRIV_2M;

		if (!ret && p.assigned == assigned && (!p.assigned || p.level == huge))
			continue;
		bad++;
		if (budget-- > 0)
			TH_LOG("%s: LOOKUP of page %d: %s assigned %u level %u, model state %d",
			       when, i, ret ? strerror(-ret) : "ok", p.assigned,
			       p.level, want);
	}
	return bad;
}

/*
 * A failed call changed state.  The known module bug is recognised (and
 * reported, never hidden); returns its index, or -1.
 *
 * Known bug 0 (fixed: such a request is EINVAL now, and
 * found.struct_in_the_page_it_converts checks it): a page ioctl or
 * CONVERT_RANGE whose struct lies in the very page it makes private
 * converted the page, then could not write the answer back into what was
 * now a guest page (EFAULT), and kept the conversion.
 */
static int known_bug(struct fuzzer *self, const struct call *k, int err)
{
	struct snp_host_page p;
	int i = page_index(&self->m, (unsigned long)k->arg);

	if (err == EFAULT && cmds[k->c].mutates && k->arg_class == A_POOL && i >= 0 &&
	    !snp_lookup(self->env.fd, page_addr(&self->m, i), &p) && p.assigned)
		return 0;
	return -1;
}

/* Re-learns the model from LOOKUP after a state change the model missed. */
static void model_resync(struct fuzzer *self)
{
	struct snp_host_page p;
	int i;

	for (i = 0; i < self->m.npages; i++) {
		if (snp_lookup(self->env.fd, page_addr(&self->m, i), &p))
			continue;
		self->state[i] = !p.assigned ? SHARED : p.level ? PRIV_2M : PRIV_4K;
	}
	/*
	 * The read-only page must never be private (found.read_only_page);
	 * should it be, it goes back at once, and the run fails.
	 */
	if (!snp_lookup(self->env.fd, self->m.ro, &p) && p.assigned) {
		atomic_fetch_add(&self->cnt->model_bad, 1);
		snp_make_shared(self->fd, self->m.ro, 0);
	}
}

/* Whether the module can write the struct back where the argument points. */
static bool writable_arg(const struct call *k)
{
	return k->arg_class == A_VALID || k->arg_class == A_VALID_MISALIGNED ||
	       k->arg_class == A_POOL;
}

/*
 * Applies a successful (or partly done) call to the model.  @bytes is the
 * struct as it is now where the argument points: what the module read
 * (a pool page holds what it holds, not what was generated), with the
 * module's answers written back.
 */
static bool model_success(struct __test_metadata *_metadata, struct fuzzer *self,
			  const struct call *k, const void *bytes, int err)
{
	struct snp_host_range r;
	struct snp_host_page p;
	unsigned long size;
	bool ok = true;
	__u64 i;

	switch (k->c) {
	case C_PRIVATE: case C_SHARED: case C_PSMASH:
		memcpy(&p, bytes, sizeof(p));
		return model_apply(_metadata, self, k->c, p.hva, p.level);
	case C_RANGE:
		memcpy(&r, bytes, sizeof(r));
		if (!err && r.done != r.npages) {
			TH_LOG("CONVERT_RANGE succeeded with done %llu of %llu",
			       r.done, r.npages);
			return false;
		}
		size = r.level == 1 ? SZ_2M : SZ_4K;
		for (i = 0; i < r.done && ok; i++)
			ok = model_apply(_metadata, self,
					 r.to_private ? C_PRIVATE : C_SHARED,
					 r.hva + i * size, r.level);
		return ok;
	default:
		return true;
	}
}

/*
 * The sequential phase: one thread, one file, the state compared around
 * every call.  Returns the number of calls.
 */
static long long run_sequential(struct __test_metadata *_metadata,
				struct fuzzer *self)
{
	struct counts *cnt = self->cnt;
	double end = now_s() + self->seconds;
	long long calls = 0;
	struct snp_host_range before;
	struct state a, b;
	char what[512];
	struct gen g;
	struct call k;
	int idx[SAMPLE + 4];

	ASSERT_EQ(0, gen_setup(&g, &self->m, self->seed, false));
	g.state = self->state;
	self->fd = snp_open();
	ASSERT_LE(0, self->fd);
	while (now_s() < end && (!self->max_calls || calls < self->max_calls)) {
		int n, i, err, diff;
		__u64 done = 0;

		gen_call(&g, &k);
		n = named_pages(&self->m, &k, idx);
		for (i = 0; i < SAMPLE; i++)
			idx[n++] = below(&g, self->m.npages);
		state_take(self->env.fd, &self->m, idx, n, &a);
		if (k.arg_class == A_POOL)
			memcpy(&before, k.arg, sizeof(before));
		err = ioctl(self->fd, k.req, k.arg) ? errno : 0;
		calls++;
		/*
		 * done says what a failed range changed, if the module could
		 * write it back: in a pool page, only if the bytes changed (a
		 * guest page refuses the write and keeps what it held).
		 */
		if (k.c == C_RANGE && err && writable_arg(&k) &&
		    (k.arg_class != A_POOL || memcmp(&before, k.arg, sizeof(before))))
			done = ((struct snp_host_range *)k.arg)->done;
		describe(&k, what, sizeof(what));
		if (!record(cnt, &k, err, false, self->m.hardware)) {
			atomic_fetch_add(&cnt->bad_errno, 1);
			TH_LOG("undocumented result %s: %s", err ? errno_name(err) : "success",
			       what);
		}
		if ((!err && cmds[k.c].mutates) || done) {
			if (err)
				atomic_fetch_add(&cnt->partial, 1);
			if (!writable_arg(&k) ||
			    !model_success(_metadata, self, &k, k.arg, err)) {
				atomic_fetch_add(&cnt->model_bad, 1);
				TH_LOG("  after %s", what);
				model_resync(self);
			}
			if (model_check(_metadata, self, false, "after a success")) {
				atomic_fetch_add(&cnt->model_bad, 1);
				TH_LOG("  after %s", what);
				model_resync(self);
			}
		} else if (err) {
			state_take(self->env.fd, &self->m, idx, n, &b);
			atomic_fetch_add(&cnt->checks, 1);
			diff = state_diff(_metadata, &a, &b, false);
			/* A write-back into a guest page is refused and counted. */
			if (diff == D_FAULTS && k.arg_class == A_POOL && only_uaccess(&a, &b))
				diff = 0;
			if (diff) {
				int bug = known_bug(self, &k, err);

				if (bug >= 0) {
					if (!atomic_fetch_add(&cnt->known_bug[bug], 1))
						TH_LOG("KNOWN BUG %d (state changed, %s): %s",
						       bug, errno_name(err), what);
				} else {
					atomic_fetch_add(&cnt->state_changed, 1);
					if (self->logged++ < LOG_MAX) {
						TH_LOG("state changed by a failed call (%s): %s",
						       errno_name(err), what);
						state_diff(_metadata, &a, &b, true);
					}
				}
				model_resync(self);
			}
		}
		/* Now and then the file goes, and everything it held with it. */
		if (calls % 1000 == 0) {
			close(self->fd);
			self->fd = snp_open();
			ASSERT_LE(0, self->fd);
			memset(self->state, SHARED, sizeof(self->state));
			EXPECT_EQ(0, model_check(_metadata, self, true, "after a re-open"));
		}
	}
	gen_free(&g);
	return calls;
}

/* Returns every page the model holds private, as the ABI says to. */
static void undo_all(struct __test_metadata *_metadata, struct fuzzer *self)
{
	int i, ret;

	for (i = 0; i < self->m.npages; i++) {
		char *hva = page_addr(&self->m, i);

		if (self->state[i] == PRIV_4K) {
			ret = snp_make_shared(self->fd, hva, SNP_HOST_LEVEL_4K);
			EXPECT_EQ(0, ret) TH_LOG("MAKE_SHARED of page %d: %s", i,
						 strerror(-ret));
			self->state[i] = SHARED;
		} else if (self->state[i] == PRIV_2M) {
			ret = snp_make_shared(self->fd, hva, SNP_HOST_LEVEL_2M);
			EXPECT_EQ(0, ret) TH_LOG("MAKE_SHARED 2M of page %d: %s", i,
						 strerror(-ret));
			memset(self->state + i, SHARED, PAGES_PER_2M);
			i += PAGES_PER_2M - 1;
		}
	}
}

/* Everything back where it started: shared, counters, VmPin, pins, direct map. */
static void expect_start(struct __test_metadata *_metadata, struct fuzzer *self,
			 const char *when)
{
	struct state now;
	const struct snp_host_stats *a = &self->base.st, *b = &now.st;
	int i;

	memset(self->state, SHARED, sizeof(self->state));
	EXPECT_EQ(0, model_check(_metadata, self, true, when));
	state_take(self->env.fd, &self->m, NULL, 0, &now);
	EXPECT_EQ(a->private_4k, b->private_4k) TH_LOG("%s", when);
	EXPECT_EQ(a->private_2m, b->private_2m) TH_LOG("%s", when);
	EXPECT_EQ(a->leaked_pages, b->leaked_pages) TH_LOG("%s", when);
	EXPECT_EQ(a->dm_unmapped_pages, b->dm_unmapped_pages) TH_LOG("%s", when);
	EXPECT_EQ(self->base.vm_pin, now.vm_pin) TH_LOG("%s", when);
	EXPECT_EQ(self->pins0, foll_pins_held()) TH_LOG("%s: FOLL_PIN references", when);
	EXPECT_EQ(self->base.kst.private_4k_now, now.kst.private_4k_now);
	for (i = 0; self->policy == SNP_HOST_DIRECTMAP_COALESCE && i < 3; i++) {
		const char *name = dm_names[i];

		EXPECT_EQ(self->base.dm[i], now.dm[i]) TH_LOG("%s: %s", when, name);
	}
	if (b->failures != a->failures)
		TH_LOG("%s: RMP failures %llu -> %llu", when, a->failures, b->failures);
}

static void report(struct __test_metadata *_metadata, const struct counts *cnt,
		   const char *phase, long long calls)
{
	char line[512];
	int c, e, len;

	TH_LOG("%s: %lld calls", phase, calls);
	for (c = 0; c < NCMD; c++) {
		if (!cnt->calls[c])
			continue;
		len = snprintf(line, sizeof(line), "  %s: %llu calls, %llu ok, errnos:",
			       cmds[c].name, (unsigned long long)cnt->calls[c],
			       (unsigned long long)cnt->ok[c]);
		for (e = 1; e <= MAX_ERRNO && len < (int)sizeof(line) - 32; e++)
			if (cnt->err[c][e])
				len += snprintf(line + len, sizeof(line) - len, " %s(%llu)",
						errno_name(e),
						(unsigned long long)cnt->err[c][e]);
		TH_LOG("%s", line);
	}
}

TEST_F_TIMEOUT(fuzz, sequential, 3600)
{
	struct fuzzer *fz = &self->z;
	struct counts *cnt = fz->cnt;
	long long calls;
	int i;

	calls = run_sequential(_metadata, fz);
	EXPECT_EQ(0, model_check(_metadata, fz, true, "at the end"));
	undo_all(_metadata, fz);
	close(fz->fd);
	fz->fd = -1;
	expect_start(_metadata, fz, "after undo and close");
	report(_metadata, cnt, "sequential", calls);
	TH_LOG("the same calls again: SNP_FUZZ_SEED=0x%llx SNP_FUZZ_CALLS=%lld",
	       (unsigned long long)fz->seed, calls);
	TH_LOG("sequential: %llu failed calls checked, %llu partial ranges, %llu changed state,",
	       (unsigned long long)cnt->checks, (unsigned long long)cnt->partial,
	       (unsigned long long)cnt->state_changed);
	TH_LOG("sequential: %llu model mismatches, %llu undocumented errnos",
	       (unsigned long long)cnt->model_bad,
	       (unsigned long long)cnt->bad_errno);
	for (i = 0; i < KNOWN_BUGS; i++)
		if (cnt->known_bug[i])
			TH_LOG("KNOWN BUG %d hit %llu times (see known_bug())",
			       i, (unsigned long long)cnt->known_bug[i]);
	EXPECT_EQ(0ULL, cnt->bad_errno);
	EXPECT_EQ(0ULL, cnt->state_changed);
	EXPECT_EQ(0ULL, cnt->model_bad);
}

struct worker {
	pthread_t tid;
	struct gen g;
	struct counts *cnt;
	const struct mem *m;
	double end;
	long long max_calls;
	long long calls;
	atomic_int *stop;
	int bad_logged;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char what[512];
	struct call k;

	while (!atomic_load(w->stop) && now_s() < w->end &&
	       (!w->max_calls || w->calls < w->max_calls)) {
		int err;

		gen_call(&w->g, &k);
		err = ioctl(FUZZ_FD, k.req, k.arg) ? errno : 0;
		w->calls++;
		if (!record(w->cnt, &k, err, true, w->m->hardware)) {
			atomic_fetch_add(&w->cnt->bad_errno, 1);
			if (w->bad_logged++ < LOG_MAX) {
				describe(&k, what, sizeof(what));
				fprintf(stderr, "# undocumented result %s: %s\n",
					err ? errno_name(err) : "success", what);
			}
		}
	}
	return NULL;
}

/* Replaces the file under the workers, or closes it for a moment. */
static void reopen(struct gen *g, long long *reopens)
{
	int fd = snp_open();

	if (fd < 0)
		return;
	if (chance(g, 90)) {
		/* Atomically: in-flight ioctls keep the old file until they return. */
		dup2(fd, FUZZ_FD);
	} else {
		close(FUZZ_FD);
		sched_yield();
		dup2(fd, FUZZ_FD);
	}
	close(fd);
	(*reopens)++;
}

TEST_F_TIMEOUT(fuzz, concurrent_close, 3600)
{
	struct fuzzer *fz = &self->z;
	struct worker w[MAX_THREADS];
	struct counts *cnt = fz->cnt;
	atomic_int stop = 0;
	long long calls = 0, reopens = 0;
	double end = now_s() + fz->seconds;
	struct gen g;
	int i, fd;

	fd = snp_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(FUZZ_FD, dup2(fd, FUZZ_FD));
	close(fd);
	ASSERT_EQ(0, gen_setup(&g, &fz->m, fz->seed ^ 0xc105e, true));
	for (i = 0; i < fz->threads; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		ASSERT_EQ(0, gen_setup(&w[i].g, &fz->m,
				       fz->seed + 0x1000 * (i + 1), true));
		w[i].cnt = cnt;
		w[i].m = &fz->m;
		w[i].end = end;
		w[i].max_calls = fz->max_calls;
		w[i].stop = &stop;
	}
	/* Every mapping exists before the first call: no mmap fills a hole now. */
	for (i = 0; i < fz->threads; i++)
		ASSERT_EQ(0, pthread_create(&w[i].tid, NULL, worker_main, &w[i]));
	while (now_s() < end) {
		usleep(200 + below(&g, 3000));
		reopen(&g, &reopens);
		if (fz->max_calls) {
			long long sum = 0;

			for (i = 0; i < fz->threads; i++)
				sum += w[i].calls;
			if (sum >= fz->max_calls * fz->threads)
				break;
		}
	}
	atomic_store(&stop, 1);
	for (i = 0; i < fz->threads; i++) {
		pthread_join(w[i].tid, NULL);
		calls += w[i].calls;
		gen_free(&w[i].g);
	}
	gen_free(&g);
	close(FUZZ_FD);
	/* Closing returned whatever the threads made private. */
	expect_start(_metadata, fz, "after the concurrent phase");
	report(_metadata, cnt, "concurrent", calls);
	TH_LOG("concurrent: %d threads, %lld re-opens, %llu undocumented errnos",
	       fz->threads, reopens, (unsigned long long)cnt->bad_errno);
	EXPECT_EQ(0ULL, cnt->bad_errno);
}

/*
 * The bugs the fuzzer found, one minimal reproducer each.  A bug still
 * open is marked XFAIL: the run says XFAIL, and once the module is fixed it
 * says XPASS, which fails, so that the mark goes with the bug.
 */
FIXTURE(found)
{
	int fd;
	char *page;
	char *ro;
};

FIXTURE_VARIANT(found)
{
	int bug;
};

/* A struct the module can read but not write back: EFAULT, nothing changed. */
FIXTURE_VARIANT_ADD(found, writeback_refused_changes_nothing)
{
	.bug = 0,
};

/* The last page of the address space: EFAULT (was EOVERFLOW). */
FIXTURE_VARIANT_ADD(found, last_page_is_efault)
{
	.bug = 1,
};

/* A page of a read-only mapping: refused wherever it sits in RAM. */
FIXTURE_VARIANT_ADD(found, read_only_page)
{
	.bug = 2,
};

/* CONVERT_RANGE refused over a guest page counts no refused GUP write. */
FIXTURE_VARIANT_ADD(found, range_over_guest_page_counts_nothing)
{
	.bug = 3,
};

/* Known bug 0, open: the struct in the very page the call makes private. */
FIXTURE_VARIANT_ADD(found, struct_in_the_page_it_converts)
{
	.bug = 4,
};

FIXTURE_SETUP(found)
{
	self->fd = -1;
	if (geteuid())
		SKIP(return, "needs root (the device)");
	if (access(SNP_MODULE_DIR, F_OK))
		SKIP(return, "snp_host.ko is not loaded");
	self->fd = snp_open();
	ASSERT_LE(0, self->fd);
	self->page = map_pages(1);
	ASSERT_NE(NULL, self->page);
	self->ro = map_one(PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	ASSERT_NE(NULL, self->ro);
}

FIXTURE_TEARDOWN(found)
{
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * Two pages of one THP, read-only after a split of its mapping: both are
 * refused, the first while nothing in the THP is private, the second after
 * a page of the THP became private (it was pinned read-only then, and made
 * private).
 */
static void reproduce_read_only(struct __test_metadata *_metadata, int fd)
{
	struct thp t;
	int r1, r2;

	if (thp_alloc(&t))
		SKIP(return, "no THP");
	ASSERT_EQ(0, mprotect(t.base + SZ_2M / 2, SZ_2M / 2, PROT_READ));
	r1 = snp_make_private(fd, t.base + SZ_2M / 2, 0x10000, 1, 0);
	ASSERT_EQ(0, snp_make_private(fd, t.base, 0x20000, 1, 0));
	r2 = snp_make_private(fd, t.base + SZ_2M / 2 + SZ_4K, 0x30000, 1, 0);
	EXPECT_EQ(-EFAULT, r1) TH_LOG("no guest page in its 2M: %s", strerror(-r1));
	EXPECT_EQ(-EFAULT, r2) TH_LOG("a guest page in its 2M: %s", strerror(-r2));
	if (!r1)
		EXPECT_EQ(0, snp_make_shared(fd, t.base + SZ_2M / 2, 0));
	if (!r2)
		EXPECT_EQ(0, snp_make_shared(fd, t.base + SZ_2M / 2 + SZ_4K, 0));
	EXPECT_EQ(0, snp_make_shared(fd, t.base, 0));
	thp_free(&t);
}

/* MAKE_PRIVATE, then CONVERT_RANGE, with the struct read from @where. */
static void reproduce_writeback(struct __test_metadata *_metadata, int fd,
				char *page, char *where, bool ro)
{
	struct snp_host_page p = snp_page(page, 0x10000, 1, 0), out;
	struct snp_host_range r;
	int ret;

	memcpy(where, &p, sizeof(p));
	if (ro)
		ASSERT_EQ(0, mprotect(where, SZ_4K, PROT_READ));
	ret = snp_ioctl(fd, SNP_HOST_MAKE_PRIVATE, where);
	ASSERT_EQ(0, snp_lookup(fd, page, &out));
	EXPECT_TRUE(!ret || !out.assigned)
		TH_LOG("MAKE_PRIVATE failed with %s, and the page is private", strerror(-ret));
	if (out.assigned)
		ASSERT_EQ(0, snp_make_shared(fd, page, 0));

	memset(&r, 0, sizeof(r));
	r.hva = (unsigned long)page;
	r.npages = 1;
	r.gpa = 0x10000;
	r.asid = 1;
	r.to_private = 1;
	if (ro)
		ASSERT_EQ(0, mprotect(where, SZ_4K, PROT_READ | PROT_WRITE));
	memcpy(where, &r, sizeof(r));
	if (ro)
		ASSERT_EQ(0, mprotect(where, SZ_4K, PROT_READ));
	ret = snp_ioctl(fd, SNP_HOST_CONVERT_RANGE, where);
	ASSERT_EQ(0, snp_lookup(fd, page, &out));
	EXPECT_TRUE(!ret || !out.assigned)
		TH_LOG("CONVERT_RANGE failed with %s, and the page is private", strerror(-ret));
	if (out.assigned)
		ASSERT_EQ(0, snp_make_shared(fd, page, 0));
}

TEST_F(found, reproduce)
{
	struct snp_host_fault_stats a, b;
	struct snp_host_page p;
	int ret;

	switch (variant->bug) {
	case 0:
		reproduce_writeback(_metadata, self->fd, self->page, self->ro, true);
		break;
	case 1:
		p = snp_page((void *)-SZ_4K, 0, 0, 0);
		ret = snp_ioctl(self->fd, SNP_HOST_LOOKUP, &p);
		EXPECT_EQ(-EFAULT, ret) TH_LOG("LOOKUP of 0x%lx: %s", -SZ_4K, strerror(-ret));
		p = snp_page((void *)-SZ_4K, 0x10000, 1, 0);
		ret = snp_ioctl(self->fd, SNP_HOST_MAKE_PRIVATE, &p);
		EXPECT_EQ(-EFAULT, ret) TH_LOG("MAKE_PRIVATE of 0x%lx: %s", -SZ_4K, strerror(-ret));
		break;
	case 2:
		reproduce_read_only(_metadata, self->fd);
		break;
	case 3:
		ASSERT_EQ(0, snp_make_private(self->fd, self->page, 0x10000, 1, 0));
		read_fault_stats(_metadata, self->fd, &a);
		ret = snp_convert_range(self->fd, self->page, 1, 0x20000, 1,
					SNP_HOST_LEVEL_4K, true, NULL);
		read_fault_stats(_metadata, self->fd, &b);
		EXPECT_EQ(-EBUSY, ret);
		EXPECT_EQ(0, fault_stats_diff(_metadata, &a, &b, "CONVERT_RANGE refused"));
		ASSERT_EQ(0, snp_make_shared(self->fd, self->page, 0));
		break;
	default:
		reproduce_writeback(_metadata, self->fd, self->page, self->page, false);
		break;
	}
}

TEST_HARNESS_MAIN
