// SPDX-License-Identifier: GPL-2.0
/*
 * The stress run of issue 11 (`make stress`, and a short one in `make
 * check`): seeded random sequences of every operation /dev/snp_host offers,
 * from several processes with several threads each, every outcome checked
 * against a model of what the caller expects.
 *
 *	snp_host_stress [-n ops] [-s seed] [-p procs] [-t threads] [-i rate]
 *			[-k kvm-test] [-K victim-MiB] [-v]
 *
 * Each thread owns its pages (a run of 4K pages, an area of THPs and, where
 * the kernel has them, one 2M hugetlbfs page) and models them: which pages
 * are private, at which size, through which of the process's files, with
 * which ASID, GPA and PFN, and the byte each page holds at DATA_OFF.  Before
 * each operation the model says what must happen (the errno, how far a range
 * gets, whether a store takes SIGBUS); the module's answer is compared with
 * it, and so is every LOOKUP.  The threads of a process share its files and
 * its address space, so their operations race on the module's per-file tree,
 * the registry, the RMP and the direct map, and on the mm.  Operations that
 * change what all threads hold (close and re-open of a file, fork) run with
 * the other threads of the process held off (a rwlock), so that the model
 * stays exact.  A fork's child checks what it inherited (the files refuse
 * page ioctls with EPERM, its copies are shared and hold the data), converts
 * pages of its own and exits without returning them.  A victim process
 * converting a big range is killed with SIGKILL by its sibling.  Next to the
 * workers, a software-protected KVM guest converts its memory through the
 * module (one upstream selftest, run again and again, -k).
 *
 * At the end: nothing private (the module's counters, its KVM counters),
 * nothing leaked that the model did not expect, no page out of the direct
 * map, VmPin of every worker back to what it leaked, FOLL_PIN pins balanced
 * in /proc/vmstat, and under directmap=coalesce DirectMap4k/2M/1G back to
 * their values at the start; the kernel log after the start has no splat.
 * The last line is
 *
 *	stress: N operations, N mismatches, N splats, N pages lost
 *
 * and the exit status is 0 only if the last three are 0.  A mismatch prints
 * the seed, the process, the thread, the operation number and what diverged.
 *
 * Injected failures (-i rate, STRESS_INJECT): if the module has fault
 * attributes (the kernel's fault_attr directories fail_* under
 * /sys/kernel/debug/snp_host/), each gets probability=rate (percent),
 * interval=1, times=-1 for the run.  The model then accepts, besides the
 * expected outcome, EBUSY and ENOMEM as "nothing changed" (a range: pages
 * [0, done) changed), EIO on the way back as "this page is leaked" (it stays
 * guest-owned and pinned: stores fault, MAKE_SHARED says ENOENT, MAKE_PRIVATE
 * says EBUSY, VmPin keeps it), and any other error as "this page is
 * uncertain" (no longer checked; allowed to count as leaked at the end).
 * Without the directories injection is skipped with a message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "snp_host_util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define MAX_SLOTS		2	/* files of /dev/snp_host per process */
#define MAX_THREADS		8
#define MAX_PROCS		8
#define N4K			64	/* pages of the 4K run of a thread */
#define NTHP			4	/* 2M pages of the THP area of a thread */
#define DATA_OFF		0x80	/* the byte of each page the model tracks */
#define MAX_RANGE		48	/* 4K pages of a random range at most */
#define FORK_SAMPLE		24	/* pages a fork's child checks */
#define ASIDS			15	/* ASIDs 1..15 */
#define ERR_BUSY		EBUSY	/* an errno the model expects (positive) */
#define GPA_SPACE		0x10000000000ULL	/* 1 TiB of GPAs */

enum pstate {
	P_SHARED,
	P_PRIV,		/* private at 4K through slot */
	P_LEAKED,	/* EIO on the way back: guest-owned and pinned for good */
	P_UNCERTAIN,	/* an injected failure left it unknown */
};

struct page_model {
	__u8 state;
	__u8 slot;
	__u8 val;
	__u32 asid;
	__u64 gpa;
	__u64 pfn;	/* 0: not known yet */
};

/* A 2M page of a THP area or the hugetlbfs page. */
struct chunk {
	bool huge;	/* still one 2M folio */
	bool priv;	/* private at 2M */
	__u8 slot;
	__u32 asid;
	__u64 gpa;
	__u64 pfn;
	int n4k;	/* pages of it private, leaked or uncertain at 4K */
};

enum rkind { R_4K, R_THP, R_HUGETLB, R_KINDS };

struct region {
	enum rkind kind;
	char *base;
	size_t npages;
	size_t mapped;	/* bytes mapped at base */
	struct page_model *pg;
	struct chunk ch[NTHP];
	int nch;
};

enum op {
	OP_LOOKUP, OP_STORE, OP_LOAD, OP_PRIV4K, OP_SHARED4K, OP_PRIV2M,
	OP_SHARED2M, OP_PSMASH, OP_RANGE_PRIV, OP_RANGE_SHARED, OP_RANGE_PRIV2M,
	OP_RANGE_SHARED2M, OP_REMAP, OP_AUDIT, OP_REOPEN, OP_FORK, OP_KILL,
	NR_OPS,
};

static const char * const op_name[NR_OPS] = {
	"LOOKUP", "store", "load", "MAKE_PRIVATE 4K", "MAKE_SHARED 4K",
	"MAKE_PRIVATE 2M", "MAKE_SHARED 2M", "PSMASH", "CONVERT_RANGE 4K to private",
	"CONVERT_RANGE 4K to shared", "CONVERT_RANGE 2M to private",
	"CONVERT_RANGE 2M to shared", "remap", "audit", "close+open", "fork",
	"SIGKILL mid-range",
};

/* Relative weights of the random operations. */
static const int op_weight[NR_OPS] = {
	160, 150, 60, 110, 120, 35, 35, 20, 50, 60, 12, 12, 6, 4, 3, 3, 1,
};

struct thread_ctx;

/* What a worker process shares between its threads. */
struct proc {
	int idx;
	int fds[MAX_SLOTS];
	pthread_rwlock_t lock;	/* read: one operation; write: reopen, fork, audit */
	struct thread_ctx *threads;
	int nthreads;
	__u64 leaked_unmapped;	/* leaked pages of regions since unmapped */
};

/* Results of a worker, in memory shared with the main process. */
struct result {
	long long ops;
	long long mismatches;
	long long leaked;	/* pages the model expects leaked */
	long long uncertain;	/* pages an injected failure left unknown */
	long long vmpin_lost;	/* kB of VmPin left over at the end */
	long long thp_lost;	/* 2M folios the kernel split under us */
	long long sweeps;	/* LOOKUPs of the final sweeps */
	long long children;	/* fork children and victims checked */
	long long killed;	/* victims killed mid-range */
	long long per_op[NR_OPS];
	long long per_op_ok[NR_OPS];	/* of those: succeeded (store: no SIGBUS) */
};

struct kvm_result {
	long long runs, passed, skipped, failed, killed;
	double seconds;
	int stop;
	pid_t cur;	/* the run in flight */
};

struct thread_ctx {
	struct proc *proc;
	int idx;
	__u64 rng;
	long long opno;
	long long ops;
	enum op cur;
	bool ok;		/* the last operation succeeded (see per_op_ok) */
	bool stopped;		/* diverged: this thread stops */
	struct region reg[R_KINDS];
	struct result *res;
};

static struct {
	long long ops;
	__u64 seed;
	int procs;
	int threads;
	int inject;
	const char *kvm_test;
	long victim_mb;
	int verbose;
	bool hooks;
	bool hugetlb;
	__u32 max_asid;
	long long leaked_now, allowed;
	bool injecting;
} cfg = {
	.ops = 100000, .procs = 3, .threads = 3, .victim_mb = 24,
};

static struct result *results;	/* [procs + 1]: the last one for the children */
static struct kvm_result *kvm;

/* ---- SIGBUS-safe stores and loads (as in fault_test.c) ---- */

struct catcher {
	sigjmp_buf jb;
	int armed;
};

static __thread struct catcher catcher;
static int stray_sigbus;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	(void)si;
	(void)ctx;
	if (!__atomic_load_n(&catcher.armed, __ATOMIC_RELAXED)) {
		__atomic_add_fetch(&stray_sigbus, 1, __ATOMIC_RELAXED);
		sigaction(sig, &dfl, NULL);
		return;
	}
	__atomic_store_n(&catcher.armed, 0, __ATOMIC_RELAXED);
	siglongjmp(catcher.jb, 1);
}

static int catch_sigbus(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL) ? -errno : 0;
}

/* One store of @v at @addr: 0, or -1 if it raised SIGBUS. */
static int store_byte(char *addr, char v)
{
	if (sigsetjmp(catcher.jb, 1))
		return -1;
	__atomic_store_n(&catcher.armed, 1, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(addr, v, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&catcher.armed, 0, __ATOMIC_RELAXED);
	return 0;
}

/* One load from @addr into *@v: 0, or -1 if it raised SIGBUS. */
static int load_byte(const char *addr, char *v)
{
	if (sigsetjmp(catcher.jb, 1))
		return -1;
	__atomic_store_n(&catcher.armed, 1, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	*v = __atomic_load_n(addr, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&catcher.armed, 0, __ATOMIC_RELAXED);
	return 0;
}

/* ---- helpers ---- */

static __u64 splitmix(__u64 *s)
{
	__u64 z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static __u64 rnd(struct thread_ctx *t, __u64 n)
{
	return n ? splitmix(&t->rng) % n : 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

static const char *err_name(int e)
{
	static __thread char buf[32];

	switch (e) {
	case 0:
		return "success";
	case EINVAL:
		return "EINVAL";
	case EBUSY:
		return "EBUSY";
	case ENOENT:
		return "ENOENT";
	case EPERM:
		return "EPERM";
	case EFAULT:
		return "EFAULT";
	case EIO:
		return "EIO";
	case ENOMEM:
		return "ENOMEM";
	case EINTR:
		return "EINTR";
	case EAGAIN:
		return "EAGAIN";
	}
	snprintf(buf, sizeof(buf), "errno %d", e);
	return buf;
}

static void mismatch(struct thread_ctx *t, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "MISMATCH seed=%llu proc=%d thread=%d op#%lld (%s): %s\n",
		(unsigned long long)cfg.seed, t->proc->idx, t->idx, t->opno,
		op_name[t->cur], msg);
	__atomic_add_fetch(&t->res->mismatches, 1, __ATOMIC_RELAXED);
	t->stopped = true;
}

static int ioctl_page(int fd, unsigned long cmd, char *hva, __u64 gpa,
		      __u32 asid, __u8 level, struct snp_host_page *out)
{
	*out = snp_page(hva, gpa, asid, level);
	return snp_ioctl(fd, cmd, out);
}

static int range(int fd, char *hva, __u64 n, __u64 gpa, __u32 asid, __u8 level,
		 bool to_private, __u64 *done)
{
	return snp_convert_range(fd, hva, n, gpa, asid, level, to_private, done);
}

/* Whether the 2M at @base is still one 2M folio (THP or hugetlbfs). */
static bool one_folio(const char *base)
{
	__u64 pfns[PAGES_PER_2M];
	int i;

	if (pagemap_pfns(base, PAGES_PER_2M, pfns) || !pfns[0] || pfns[0] % PAGES_PER_2M)
		return false;
	for (i = 1; i < PAGES_PER_2M; i++)
		if (pfns[i] != pfns[0] + i)
			return false;
	return (kpf_has(pfns[0], KPF_THP) || kpf_has(pfns[0], KPF_HUGE)) &&
	       kpf_has(pfns[0], KPF_COMPOUND_HEAD);
}

/* ---- regions ---- */

static struct chunk *chunk_of(struct region *r, size_t i)
{
	return r->kind == R_4K ? NULL : &r->ch[i / PAGES_PER_2M];
}

/* The page is guest-owned (or may be): a store to it must fault. */
static bool page_guest(struct region *r, size_t i)
{
	struct chunk *c = chunk_of(r, i);

	return r->pg[i].state != P_SHARED || (c && c->priv);
}

static bool page_uncertain(struct region *r, size_t i)
{
	return r->pg[i].state == P_UNCERTAIN;
}

/* A store to page @i must take SIGBUS. */
static bool store_faults(struct region *r, size_t i)
{
	struct chunk *c = chunk_of(r, i);

	if (page_guest(r, i))
		return true;
	/* A hugetlbfs page cannot be split: one guest page in it guards all. */
	return r->kind == R_HUGETLB && (c->priv || c->n4k);
}

static bool chunk_uncertain(struct region *r, int c)
{
	size_t i;

	for (i = c * PAGES_PER_2M; i < (size_t)(c + 1) * PAGES_PER_2M; i++)
		if (page_uncertain(r, i))
			return true;
	return false;
}

static int region_map(struct region *r)
{
	size_t i, len = r->npages * SZ_4K;
	int c;

	switch (r->kind) {
	case R_4K:
		r->base = map_pages(r->npages);
		break;
	case R_THP:
		r->base = map_anon(len, SZ_2M, MADV_HUGEPAGE);
		if (r->base)
			for (c = 0; c < r->nch; c++)
				if (!one_folio(r->base + c * SZ_2M))
					madvise(r->base + c * SZ_2M, SZ_2M, MADV_COLLAPSE);
		break;
	case R_HUGETLB:
		r->base = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT),
			       -1, 0);
		if (r->base == MAP_FAILED) {
			r->base = NULL;
			break;
		}
		/* A child never shares it: a COW of it could steal the page. */
		madvise(r->base, SZ_2M, MADV_DONTFORK);
		break;
	default:
		break;
	}
	if (!r->base)
		return -ENOMEM;
	r->mapped = len;
	for (i = 0; i < r->npages; i++) {
		r->pg[i] = (struct page_model){ .val = (__u8)(i * 7 + 1) };
		r->base[i * SZ_4K + DATA_OFF] = (char)r->pg[i].val;
	}
	for (c = 0; c < r->nch; c++) {
		r->ch[c] = (struct chunk){ .huge = one_folio(r->base + c * SZ_2M) };
		/* No collapse behind the model's back once a fault split a mapping. */
		if (r->kind == R_THP)
			madvise(r->base + c * SZ_2M, SZ_2M, MADV_NOHUGEPAGE);
	}
	return 0;
}

static int region_init(struct region *r, enum rkind kind)
{
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->npages = kind == R_4K ? N4K : kind == R_THP ? NTHP * PAGES_PER_2M : PAGES_PER_2M;
	r->nch = kind == R_4K ? 0 : kind == R_THP ? NTHP : 1;
	r->pg = calloc(r->npages, sizeof(*r->pg));
	if (!r->pg)
		return -ENOMEM;
	if (kind == R_HUGETLB && !cfg.hugetlb) {
		r->npages = 0;
		return 0;
	}
	if (region_map(r)) {
		if (kind == R_HUGETLB) {
			r->npages = 0;
			return 0;
		}
		return -ENOMEM;
	}
	return 0;
}

/* Pages the model has pinned in @r (private, leaked or uncertain). */
static __u64 region_pinned(struct region *r, bool *uncertain)
{
	__u64 n = 0;
	size_t i;
	int c;

	for (i = 0; i < r->npages; i++) {
		n += r->pg[i].state != P_SHARED;
		if (r->pg[i].state == P_UNCERTAIN)
			*uncertain = true;
	}
	for (c = 0; c < r->nch && r->npages; c++)
		n += r->ch[c].priv ? PAGES_PER_2M : 0;
	return n;
}

/* ---- the model's updates ---- */

static void set_private(struct region *r, size_t i, int slot, __u32 asid, __u64 gpa,
			__u64 pfn)
{
	struct chunk *c = chunk_of(r, i);

	r->pg[i] = (struct page_model){ .state = P_PRIV, .slot = slot, .val = r->pg[i].val,
				       .asid = asid, .gpa = gpa, .pfn = pfn };
	if (c)
		c->n4k++;
}

static void set_shared(struct region *r, size_t i)
{
	struct chunk *c = chunk_of(r, i);

	if (r->pg[i].state != P_SHARED && c)
		c->n4k--;
	r->pg[i].state = P_SHARED;
	r->pg[i].pfn = 0;
}

static void set_leaked(struct thread_ctx *t, struct region *r, size_t i, enum pstate how)
{
	struct chunk *c = chunk_of(r, i);

	if (r->pg[i].state == P_SHARED && c)
		c->n4k++;
	r->pg[i].state = how;
	__atomic_add_fetch(how == P_LEAKED ? &t->res->leaked : &t->res->uncertain, 1,
			   __ATOMIC_RELAXED);
}

/* A 2M page leaked or made uncertain: its 512 pages, each as a 4K page. */
static void chunk_leaked(struct thread_ctx *t, struct region *r, int c, enum pstate how)
{
	size_t i;

	r->ch[c].priv = false;
	for (i = c * PAGES_PER_2M; i < (size_t)(c + 1) * PAGES_PER_2M; i++)
		set_leaked(t, r, i, how);
}

/* Marks page @i, or its whole 2M chunk if @chunk, as @how. */
static void mark_lost(struct thread_ctx *t, struct region *r, size_t i, bool chunk,
		      enum pstate how)
{
	if (chunk)
		chunk_leaked(t, r, i / PAGES_PER_2M, how);
	else
		set_leaked(t, r, i, how);
}

/*
 * An outcome the model did not expect, but one an injected failure
 * explains: EBUSY and ENOMEM change nothing; anything else makes the page
 * uncertain.  Returns whether it is explained.
 */
static bool injected(struct thread_ctx *t, struct region *r, size_t i, int got, bool chunk)
{
	if (!cfg.injecting || !got)
		return false;
	if (got == EBUSY || got == ENOMEM)
		return true;
	mark_lost(t, r, i, chunk, P_UNCERTAIN);
	return true;
}

static int pick_slot(struct thread_ctx *t)
{
	return (int)rnd(t, MAX_SLOTS);
}

static __u32 pick_asid(struct thread_ctx *t)
{
	__u32 max = cfg.max_asid < ASIDS ? cfg.max_asid : ASIDS;

	return 1 + (__u32)rnd(t, max ? max : 1);
}

static __u64 pick_gpa(struct thread_ctx *t, __u64 align)
{
	return rnd(t, GPA_SPACE / align - 64) * align;
}

/* A region of the thread that has pages (the hugetlbfs one may have none). */
static struct region *pick_region(struct thread_ctx *t, bool huge_only)
{
	struct region *r;

	do {
		r = &t->reg[huge_only ? 1 + rnd(t, 2) : rnd(t, R_KINDS)];
	} while (!r->npages && (huge_only ? t->reg[R_THP].npages : 1));
	return r;
}

/*
 * Pages where the random 4K operations start: in a THP area only the first
 * half, so that the other half stays free for 2M pages (4K pages private
 * in every chunk would refuse every 2M conversion); a scan for a page of
 * the wanted kind, and a range, may go on into the other half.
 */
static size_t mixed_pages(struct region *r)
{
	return r->kind == R_THP ? r->npages / 2 : r->npages;
}

/*
 * A page of @r, biased (@bias of 100) towards one that is private (@priv)
 * or shared (!@priv), so that conversions both succeed and are refused.
 */
static size_t pick_page(struct thread_ctx *t, struct region *r, bool priv, int bias)
{
	size_t i = rnd(t, mixed_pages(r)), k;

	if ((int)rnd(t, 100) >= bias)
		return i;
	for (k = 0; k < r->npages; k++) {
		size_t j = (i + k) % r->npages;

		if (page_uncertain(r, j))
			continue;
		if (priv ? r->pg[j].state == P_PRIV : !page_guest(r, j))
			return j;
	}
	return i;
}

/* ---- operations ---- */

static void check_lookup(struct thread_ctx *t, struct region *r, size_t i,
			 const struct snp_host_page *p)
{
	struct chunk *c = chunk_of(r, i);
	struct page_model *m = &r->pg[i];
	char *hva = r->base + i * SZ_4K;

	if (m->state == P_LEAKED || m->state == P_UNCERTAIN)
		return;
	if (c && c->priv) {
		if (!p->assigned || p->level != 1 || p->asid != c->asid || p->gpa != c->gpa ||
		    (c->pfn && p->pfn != c->pfn + i % PAGES_PER_2M))
			mismatch(t,
				 "%p in a 2M page private (asid %u gpa %#llx pfn %#llx): LOOKUP says assigned=%u level=%u asid=%u gpa=%#llx pfn %#llx",
				 hva, c->asid, (unsigned long long)c->gpa,
				 (unsigned long long)c->pfn, p->assigned, p->level, p->asid,
				 (unsigned long long)p->gpa, (unsigned long long)p->pfn);
		return;
	}
	if (m->state == P_PRIV) {
		if (!p->assigned || p->level != 0 || p->asid != m->asid || p->gpa != m->gpa ||
		    (m->pfn && p->pfn != m->pfn))
			mismatch(t,
				 "%p private at 4K (asid %u gpa %#llx pfn %#llx): LOOKUP says assigned=%u level=%u asid=%u gpa=%#llx pfn %#llx",
				 hva, m->asid, (unsigned long long)m->gpa,
				 (unsigned long long)m->pfn, p->assigned, p->level, p->asid,
				 (unsigned long long)p->gpa, (unsigned long long)p->pfn);
		if (!m->pfn)
			m->pfn = p->pfn;
		return;
	}
	if (p->assigned)
		mismatch(t, "%p shared: LOOKUP says assigned (level %u asid %u gpa %#llx)",
			 hva, p->level, p->asid, (unsigned long long)p->gpa);
}

static void lookup_page(struct thread_ctx *t, struct region *r, size_t i, int fd)
{
	struct snp_host_page p;
	int ret;

	ret = -ioctl_page(fd, SNP_HOST_LOOKUP, r->base + i * SZ_4K, 0, 0, 0, &p);
	if (ret) {
		mismatch(t, "LOOKUP %p: %s", r->base + i * SZ_4K, err_name(ret));
		return;
	}
	check_lookup(t, r, i, &p);
	t->ok = p.assigned;
}

static void op_lookup(struct thread_ctx *t)
{
	struct region *r = pick_region(t, false);

	lookup_page(t, r, rnd(t, r->npages), t->proc->fds[pick_slot(t)]);
}

static void op_store(struct thread_ctx *t)
{
	struct region *r = pick_region(t, false);
	size_t i = rnd(t, 3) ? rnd(t, r->npages) : pick_page(t, r, false, 100);
	char *page = r->base + i * SZ_4K;
	char v = (char)rnd(t, 256), now;
	bool faults = store_faults(r, i), anywhere = rnd(t, 4) == 0;
	int got;

	if (page_uncertain(r, i) || (r->kind == R_HUGETLB && chunk_uncertain(r, 0)))
		return;
	if (anywhere) {
		size_t off = rnd(t, SZ_4K);

		if (off == DATA_OFF)
			off++;
		got = store_byte(page + off, v);
	} else {
		got = store_byte(page + DATA_OFF, v);
	}
	if (got == 0 && faults)
		mismatch(t, "a store to %p succeeded; the page is guest-owned%s", page,
			 page_guest(r, i) ? "" : " (a hugetlbfs page holding a guest page)");
	else if (got && !faults)
		mismatch(t, "a store to %p took SIGBUS; the page is shared", page);
	else if (got == 0 && !anywhere)
		r->pg[i].val = (__u8)v;
	t->ok = !got;
	if (got && !load_byte(page + DATA_OFF, &now) && (__u8)now != r->pg[i].val)
		mismatch(t, "%p holds %#x after a refused store, %#x before", page,
			 (__u8)now, r->pg[i].val);
}

static void op_load(struct thread_ctx *t)
{
	struct region *r = pick_region(t, false);
	size_t i = rnd(t, r->npages);
	char *addr = r->base + i * SZ_4K + DATA_OFF;
	char v;

	if (page_uncertain(r, i))
		return;
	t->ok = !load_byte(addr, &v);
	if (!t->ok)
		mismatch(t, "a load from %p took SIGBUS", addr);
	else if ((__u8)v != r->pg[i].val)
		mismatch(t, "%p holds %#x, the model says %#x (%s)", addr, (__u8)v,
			 r->pg[i].val, page_guest(r, i) ? "guest-owned" : "shared");
}

static void op_priv4k(struct thread_ctx *t)
{
	struct region *r = pick_region(t, false);
	size_t i = pick_page(t, r, false, 70);
	int slot = pick_slot(t), want, got;
	__u32 asid = pick_asid(t);
	__u64 gpa = pick_gpa(t, SZ_4K);
	struct snp_host_page p;

	if (page_uncertain(r, i))
		return;
	want = page_guest(r, i) ? EBUSY : 0;
	got = -ioctl_page(t->proc->fds[slot], SNP_HOST_MAKE_PRIVATE, r->base + i * SZ_4K,
			  gpa, asid, SNP_HOST_LEVEL_4K, &p);
	if (got == want) {
		t->ok = !got;
		if (!got)
			set_private(r, i, slot, asid, gpa, p.pfn);
		return;
	}
	if (!want && injected(t, r, i, got, false))
		return;
	mismatch(t, "MAKE_PRIVATE %p (%s): %s, expected %s", r->base + i * SZ_4K,
		 page_guest(r, i) ? "guest-owned" : "shared", err_name(got), err_name(want));
}

/* A MAKE_SHARED or a range to shared failed with EIO: page @i is leaked. */
static bool leaked_on_return(struct thread_ctx *t, struct region *r, size_t i, int got,
			     bool chunk)
{
	if (!cfg.injecting || got != EIO)
		return false;
	mark_lost(t, r, i, chunk, P_LEAKED);
	return true;
}

static void op_shared4k(struct thread_ctx *t)
{
	struct region *r = pick_region(t, false);
	size_t i = pick_page(t, r, true, 80);
	struct page_model *m = &r->pg[i];
	int slot = m->state == P_PRIV && rnd(t, 8) ? m->slot : pick_slot(t);
	struct snp_host_page p;
	int want, got;

	if (page_uncertain(r, i))
		return;
	want = m->state == P_PRIV && m->slot == slot ? 0 : ENOENT;
	got = -ioctl_page(t->proc->fds[slot], SNP_HOST_MAKE_SHARED, r->base + i * SZ_4K, 0, 0,
			  SNP_HOST_LEVEL_4K, &p);
	if (got == want) {
		t->ok = !got;
		if (!got)
			set_shared(r, i);
		return;
	}
	if (!want && (leaked_on_return(t, r, i, got, false) || injected(t, r, i, got, false)))
		return;
	mismatch(t, "MAKE_SHARED %p through file %d (state %d, file %d): %s, expected %s",
		 r->base + i * SZ_4K, slot, m->state, m->slot, err_name(got), err_name(want));
}

/*
 * A 2M page of @r, biased towards one that is free to become private
 * (@priv false) or private at 2M (@priv true), so that 2M conversions do
 * not starve once 4K pages are private in every chunk.
 */
static int pick_chunk(struct thread_ctx *t, struct region *r, bool priv)
{
	int c = (int)rnd(t, r->nch), k;

	if (rnd(t, 4) == 0)
		return c;
	for (k = 0; k < r->nch; k++) {
		struct chunk *ch = &r->ch[(c + k) % r->nch];

		if (priv ? ch->priv : !ch->priv && !ch->n4k && ch->huge)
			return (c + k) % r->nch;
	}
	return c;
}

/* What converting chunk @c of @r at 2M must give: EBUSY, EINVAL or 0. */
static int chunk_want_private(struct region *r, int c)
{
	if (r->ch[c].priv || r->ch[c].n4k)
		return ERR_BUSY;
	return r->ch[c].huge ? 0 : EINVAL;
}

/*
 * A 2M conversion refused with EINVAL that the model expected to work: fine
 * if the kernel no longer backs the chunk by one 2M folio (a fork's COW, a
 * split), which the model then learns.
 */
static bool chunk_split(struct thread_ctx *t, struct region *r, int c, int got)
{
	if (got != EINVAL || r->kind != R_THP || one_folio(r->base + c * SZ_2M))
		return false;
	r->ch[c].huge = false;
	__atomic_add_fetch(&t->res->thp_lost, 1, __ATOMIC_RELAXED);
	return true;
}

static void op_priv2m(struct thread_ctx *t)
{
	struct region *r = pick_region(t, true);
	int slot = pick_slot(t), want, got, c = pick_chunk(t, r, false);
	__u32 asid = pick_asid(t);
	__u64 gpa = pick_gpa(t, SZ_2M);
	struct snp_host_page p;

	if (!r->npages || chunk_uncertain(r, c))
		return;
	want = chunk_want_private(r, c);
	got = -ioctl_page(t->proc->fds[slot], SNP_HOST_MAKE_PRIVATE, r->base + c * SZ_2M,
			  gpa, asid, SNP_HOST_LEVEL_2M, &p);
	if (got == EINVAL && want == 0 && chunk_split(t, r, c, got))
		return;
	if (got == 0 && want == EINVAL && one_folio(r->base + c * SZ_2M)) {
		r->ch[c].huge = true;
		want = 0;
	}
	if (got == want) {
		t->ok = !got;
		if (!got)
			r->ch[c] = (struct chunk){ .huge = true, .priv = true, .slot = slot,
						   .asid = asid, .gpa = gpa, .pfn = p.pfn };
		return;
	}
	if (!want && injected(t, r, c * PAGES_PER_2M, got, true))
		return;
	mismatch(t, "MAKE_PRIVATE 2M %p (%s, %d 4K pages private, huge %d): %s, expected %s",
		 r->base + c * SZ_2M, r->kind == R_THP ? "THP" : "hugetlbfs",
		 r->ch[c].n4k, r->ch[c].huge, err_name(got), err_name(want));
}

static void op_shared2m(struct thread_ctx *t)
{
	struct region *r = pick_region(t, true);
	int slot, want, got, c = pick_chunk(t, r, true);
	struct snp_host_page p;

	if (!r->npages || chunk_uncertain(r, c))
		return;
	slot = r->ch[c].priv && rnd(t, 8) ? r->ch[c].slot : pick_slot(t);
	want = r->ch[c].priv && r->ch[c].slot == slot ? 0 : ENOENT;
	got = -ioctl_page(t->proc->fds[slot], SNP_HOST_MAKE_SHARED, r->base + c * SZ_2M, 0, 0,
			  SNP_HOST_LEVEL_2M, &p);
	if (got == want) {
		t->ok = !got;
		if (!got)
			r->ch[c].priv = false;
		return;
	}
	if (!want && (leaked_on_return(t, r, c * PAGES_PER_2M, got, true) ||
		      injected(t, r, c * PAGES_PER_2M, got, true)))
		return;
	mismatch(t, "MAKE_SHARED 2M %p through file %d (private %d through %d): %s, expected %s",
		 r->base + c * SZ_2M, slot, r->ch[c].priv, r->ch[c].slot, err_name(got),
		 err_name(want));
}

static void op_psmash(struct thread_ctx *t)
{
	struct region *r = pick_region(t, true);
	int slot, want, got, c = pick_chunk(t, r, true);
	struct chunk *ch = &r->ch[c];
	struct snp_host_page p;
	size_t i;

	if (!r->npages || chunk_uncertain(r, c))
		return;
	slot = ch->priv && rnd(t, 8) ? ch->slot : pick_slot(t);
	want = ch->priv && ch->slot == slot ? 0 : ENOENT;
	got = -ioctl_page(t->proc->fds[slot], SNP_HOST_PSMASH, r->base + c * SZ_2M, 0, 0, 0, &p);
	if (got == want) {
		t->ok = !got;
		if (got)
			return;
		if (ch->pfn && p.pfn != ch->pfn)
			mismatch(t, "PSMASH %p: pfn %#llx, the 2M page was %#llx",
				 r->base + c * SZ_2M, (unsigned long long)p.pfn,
				 (unsigned long long)ch->pfn);
		ch->priv = false;
		for (i = 0; i < PAGES_PER_2M; i++)
			set_private(r, c * PAGES_PER_2M + i, slot, ch->asid, ch->gpa + i * SZ_4K,
				    ch->pfn ? ch->pfn + i : 0);
		return;
	}
	if (!want && injected(t, r, c * PAGES_PER_2M, got, true))
		return;
	mismatch(t, "PSMASH %p through file %d (private %d through %d): %s, expected %s",
		 r->base + c * SZ_2M, slot, ch->priv, ch->slot, err_name(got), err_name(want));
}

/* Applies a range that converted @done pages from @i0 (4K) or chunk @c0 (2M). */
static void range_apply(struct region *r, bool huge, bool to_private, size_t first,
			__u64 done, int slot, __u32 asid, __u64 gpa)
{
	size_t k;

	for (k = 0; k < done; k++) {
		if (huge && to_private)
			r->ch[first + k] = (struct chunk){ .huge = true, .priv = true, .slot = slot,
							   .asid = asid, .gpa = gpa + k * SZ_2M };
		else if (huge)
			r->ch[first + k].priv = false;
		else if (to_private)
			set_private(r, first + k, slot, asid, gpa + k * SZ_4K, 0);
		else
			set_shared(r, first + k);
	}
}

static void op_range(struct thread_ctx *t, bool huge, bool to_private)
{
	struct region *r = pick_region(t, huge);
	size_t units = huge ? (size_t)r->nch : r->npages, first, n, k;
	int slot = pick_slot(t), want = 0, got;
	__u32 asid = pick_asid(t);
	__u64 gpa = pick_gpa(t, huge ? SZ_2M : SZ_4K), done = 0, want_done;
	size_t unit = huge ? SZ_2M : SZ_4K;

	if (!r->npages)
		return;
	if (huge) {
		first = (size_t)pick_chunk(t, r, !to_private);
		n = 1 + rnd(t, units - first);
	} else if (!to_private && rnd(t, 4)) {
		/*
		 * Mostly a run the model holds private through one file, so that
		 * ranges back succeed as well as stop at ENOENT (one page more).
		 */
		first = pick_page(t, r, true, 100);
		for (n = 1; first + n < units && n < PAGES_PER_2M &&
		     r->pg[first + n].state == P_PRIV &&
		     r->pg[first + n].slot == r->pg[first].slot; n++)
			;
		if (first + n < units && rnd(t, 4) == 0)
			n++;
	} else {
		first = rnd(t, mixed_pages(r));
		n = 1 + rnd(t, units - first < MAX_RANGE ? units - first : MAX_RANGE);
	}
	for (k = 0; k < n; k++) {
		size_t pg = huge ? (first + k) * PAGES_PER_2M : first + k;

		if (huge ? chunk_uncertain(r, (int)(first + k)) : page_uncertain(r, pg))
			return;
	}
	if (!to_private && !huge && rnd(t, 4)) {
		/* Give back through the file that holds the first page. */
		if (r->pg[first].state == P_PRIV)
			slot = r->pg[first].slot;
	} else if (!to_private && huge && r->ch[first].priv && rnd(t, 4)) {
		slot = r->ch[first].slot;
	}
	for (k = 0; k < n && !want; k++) {
		if (huge && to_private)
			want = chunk_want_private(r, (int)(first + k));
		else if (huge)
			want = r->ch[first + k].priv && r->ch[first + k].slot == slot ? 0 : ENOENT;
		else if (to_private)
			want = page_guest(r, first + k) ? EBUSY : 0;
		else
			want = r->pg[first + k].state == P_PRIV &&
			       r->pg[first + k].slot == slot ? 0 : ENOENT;
		if (want)
			break;
	}
	want_done = k;
	got = -range(t->proc->fds[slot], r->base + first * unit, n, gpa, asid,
		     huge ? SNP_HOST_LEVEL_2M : SNP_HOST_LEVEL_4K, to_private, &done);
	if (done > n || (got == 0 && done != n)) {
		mismatch(t, "CONVERT_RANGE %p +%zu: %s with done %llu", r->base + first * unit,
			 n, err_name(got), (unsigned long long)done);
		return;
	}
	if (huge && to_private && got == EINVAL && done < want_done &&
	    chunk_split(t, r, (int)(first + done), got)) {
		range_apply(r, huge, to_private, first, done, slot, asid, gpa);
		return;
	}
	if (huge && to_private && want == EINVAL && done > want_done &&
	    one_folio(r->base + (first + want_done) * SZ_2M)) {
		/* The kernel gave the chunk a 2M folio again: the module was right. */
		r->ch[first + want_done].huge = true;
		range_apply(r, huge, to_private, first, done, slot, asid, gpa);
		return;
	}
	if (got == want && done == want_done) {
		t->ok = !got;
		range_apply(r, huge, to_private, first, done, slot, asid, gpa);
		return;
	}
	if (cfg.injecting && got && done < want_done) {
		size_t at = huge ? (first + done) * PAGES_PER_2M : first + done;

		range_apply(r, huge, to_private, first, done, slot, asid, gpa);
		if (!to_private && leaked_on_return(t, r, at, got, huge))
			return;
		if (injected(t, r, at, got, huge))
			return;
	}
	mismatch(t,
		 "CONVERT_RANGE %s %p + %zu pages of %s through file %d: %s, done %llu; expected %s, done %llu",
		 to_private ? "to private" : "to shared", r->base + first * unit, n,
		 huge ? "2M" : "4K", slot, err_name(got), (unsigned long long)done,
		 err_name(want), (unsigned long long)want_done);
}

/* munmap() and map again a region nothing of which is private. */
static void op_remap(struct thread_ctx *t)
{
	struct region *r = pick_region(t, false);
	bool unc = false;

	if (!r->npages || region_pinned(r, &unc))
		return;
	munmap(r->base, r->mapped);
	t->ok = true;
	if (region_map(r)) {
		if (r->kind != R_HUGETLB) {
			mismatch(t, "cannot map a new %s region", r->kind == R_THP ? "THP" : "4K");
			return;
		}
		r->npages = 0;
	}
}

/* Pages the model has pinned in the whole process; *@uncertain if unknown. */
static __u64 proc_pinned(struct proc *pr, bool *uncertain)
{
	__u64 n = pr->leaked_unmapped;
	int i, k;

	*uncertain = false;
	for (i = 0; i < pr->nthreads; i++)
		for (k = 0; k < R_KINDS; k++)
			n += region_pinned(&pr->threads[i].reg[k], uncertain);
	return n;
}

/* With every thread of the process held off: VmPin is what the model pinned. */
static void audit(struct thread_ctx *t)
{
	long long kb = proc_status_kb(0, "VmPin");
	bool unc;
	__u64 want = proc_pinned(t->proc, &unc);

	if (!unc && kb != (long long)(want * 4))
		mismatch(t, "VmPin is %lld kB, the model has %llu pages pinned (%llu kB)", kb,
			 (unsigned long long)want, (unsigned long long)want * 4);
}

static void op_audit(struct thread_ctx *t)
{
	struct region *r;
	int k;

	audit(t);
	for (k = 0; k < 16 && !t->stopped; k++) {
		r = pick_region(t, false);
		lookup_page(t, r, rnd(t, r->npages), t->proc->fds[pick_slot(t)]);
	}
	t->ok = !t->stopped;
}

/*
 * A page (or 2M page) of a file just closed: shared again, or, with failures
 * injected, perhaps leaked by the close (which reports nothing per page).
 */
static void closed_page(struct thread_ctx *t, struct region *r, size_t i)
{
	if (cfg.injecting)
		set_leaked(t, r, i, P_UNCERTAIN);
	else
		set_shared(r, i);
}

static void closed_chunk(struct thread_ctx *t, struct region *r, int c)
{
	if (cfg.injecting)
		chunk_leaked(t, r, c, P_UNCERTAIN);
	else
		r->ch[c].priv = false;
}

/* close() one file (which returns all it holds) and open it again. */
static void op_reopen(struct thread_ctx *t)
{
	struct proc *pr = t->proc;
	int slot = pick_slot(t), i, k, c, fd;
	size_t j;

	close(pr->fds[slot]);
	for (i = 0; i < pr->nthreads; i++) {
		for (k = 0; k < R_KINDS; k++) {
			struct region *r = &pr->threads[i].reg[k];

			for (j = 0; j < r->npages; j++)
				if (r->pg[j].state == P_PRIV && r->pg[j].slot == slot)
					closed_page(t, r, j);
			for (c = 0; c < r->nch; c++)
				if (r->ch[c].priv && r->ch[c].slot == slot)
					closed_chunk(t, r, c);
		}
	}
	fd = snp_open();
	if (fd < 0) {
		mismatch(t, "re-open of %s: %s", SNP_DEV, err_name(-fd));
		pr->fds[slot] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		return;
	}
	pr->fds[slot] = fd;
	t->ok = true;
	audit(t);
}

/* A mismatch seen by a child (which reports it in its exit status). */
static int child_mismatch(struct proc *pr, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "MISMATCH seed=%llu proc=%d child: %s\n",
		(unsigned long long)cfg.seed, pr->idx, msg);
	return 1;
}

/*
 * In a child: the files it inherited refuse page ioctls (EPERM) and answer
 * GET_STATS; then they are closed, before the parent goes on, so that the
 * parent's closes stay the last ones.  Returns the mismatches seen.
 */
static int child_files(struct proc *pr, struct thread_ctx *t)
{
	struct snp_host_stats st;
	struct snp_host_page p;
	int s, bad = 0, ret;

	for (s = 0; s < MAX_SLOTS; s++) {
		ret = -ioctl_page(pr->fds[s], SNP_HOST_LOOKUP, t->reg[R_4K].base, 0, 0, 0, &p);
		if (ret != EPERM)
			bad += child_mismatch(pr, "LOOKUP through an inherited file: %s, not EPERM",
					      err_name(ret));
		ret = -snp_get_stats(pr->fds[s], &st);
		if (ret)
			bad += child_mismatch(pr, "GET_STATS through an inherited file: %s",
					      err_name(ret));
		close(pr->fds[s]);
	}
	return bad;
}

/* The child of a fork: checks its copies, converts some, exits holding them. */
static int fork_child(struct thread_ctx *t, int ready)
{
	struct proc *pr = t->proc;
	int bad = child_files(pr, t), fd, k, nmine = 0, m;
	char *mine[FORK_SAMPLE];
	struct snp_host_page p;

	if (write(ready, "x", 1) != 1)
		bad++;
	close(ready);
	fd = snp_open();
	if (fd < 0)
		return 100;
	for (k = 0; k < FORK_SAMPLE; k++) {
		struct thread_ctx *o = &pr->threads[rnd(t, pr->nthreads)];
		struct region *r = &o->reg[rnd(t, 2)];	/* no hugetlbfs: MADV_DONTFORK */
		size_t i = rnd(t, r->npages);
		char *a = r->base + i * SZ_4K + DATA_OFF;
		char v;
		int ret;

		if (page_uncertain(r, i))
			continue;
		for (m = 0; m < nmine && mine[m] != a; m++)
			;
		if (m < nmine)
			continue;	/* its own private page now */
		if (load_byte(a, &v) || (__u8)v != r->pg[i].val)
			bad += child_mismatch(pr, "its copy of %p holds %#x, the parent's %#x", a,
					      (__u8)v, r->pg[i].val);
		ret = -ioctl_page(fd, SNP_HOST_LOOKUP, a - DATA_OFF, 0, 0, 0, &p);
		if (ret || p.assigned)
			bad += child_mismatch(pr, "LOOKUP of its copy %p: %s assigned=%u", a,
					      err_name(ret), p.assigned);
		if (store_byte(a, (char)~v))
			bad += child_mismatch(pr, "a store to its copy %p took SIGBUS", a);
		else
			r->pg[i].val = (__u8)~v;	/* the child's model of its copy */
		/* Some become private and stay so: the exit must return them. */
		if (k % 3 == 0) {
			ret = -ioctl_page(fd, SNP_HOST_MAKE_PRIVATE, a - DATA_OFF,
					  pick_gpa(t, SZ_4K), 1, SNP_HOST_LEVEL_4K, &p);
			if (ret)
				bad += child_mismatch(pr, "MAKE_PRIVATE of its copy %p: %s", a,
						      err_name(ret));
			else
				mine[nmine++] = a;
		}
	}
	return bad > 100 ? 100 : bad;
}

/*
 * QEMU's TCG (7.2, the test VM's emulator) computes EFLAGS wrongly when an
 * instruction that reads them, such as SETcc to memory, takes a page fault:
 * after a fork() nearly every first store of the parent (and the child) to a
 * page of its own is a copy-on-write fault, and a branch taken after one of
 * them may go the wrong way.  So fork() bypasses glibc's wrapper (whose
 * code after the system call stores, and branches) and both sides write-fault
 * in, at once, every private writable mapping that is not a page the model
 * tracks (heap, data, thread stacks and TLS) with MADV_POPULATE_WRITE, before
 * they run anything else.  The ranges are collected before the fork, while
 * no page is copy-on-write.
 */
#define MAX_COW_RANGES		128

static __thread struct { unsigned long lo, hi; } cow_range[MAX_COW_RANGES];
static __thread int ncow;

static bool is_model_memory(struct proc *pr, unsigned long lo, unsigned long hi)
{
	int i, k;

	for (i = 0; i < pr->nthreads; i++)
		for (k = 0; k < R_KINDS; k++) {
			struct region *r = &pr->threads[i].reg[k];
			unsigned long b = (unsigned long)r->base;

			if (r->base && lo < b + r->mapped && b < hi)
				return true;
		}
	return false;
}

static void collect_cow_ranges(struct proc *pr)
{
	char *maps = read_text("/proc/self/maps"), *line, *save = NULL;
	unsigned long lo, hi;
	char perm[8];

	ncow = 0;
	if (!maps)
		return;
	for (line = strtok_r(maps, "\n", &save); line && ncow < MAX_COW_RANGES;
	     line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3 || strcmp(perm, "rw-p"))
			continue;
		if (strstr(line, "[vvar") || strstr(line, "[vdso") || is_model_memory(pr, lo, hi))
			continue;
		cow_range[ncow].lo = lo;
		cow_range[ncow].hi = hi;
		ncow++;
	}
	free(maps);
}

static void populate_cow_ranges(void)
{
	int i;

	for (i = 0; i < ncow; i++)
		syscall(SYS_madvise, cow_range[i].lo, cow_range[i].hi - cow_range[i].lo,
			MADV_POPULATE_WRITE);
}

static pid_t raw_fork(void)
{
	pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);

	if (pid >= 0)
		populate_cow_ranges();
	return pid;
}

/*
 * Forks a child running @fn; waits until it closed what it inherited.
 * Returns its PID or a negative errno (reported as a mismatch).
 */
static pid_t spawn(struct thread_ctx *t, int (*fn)(struct thread_ctx *, int, void *), void *arg)
{
	int pfd[2];
	pid_t pid;
	char c;

	if (pipe2(pfd, O_CLOEXEC)) {
		mismatch(t, "pipe2: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	collect_cow_ranges(t->proc);
	pid = raw_fork();
	if (pid < 0) {
		int e = errno;

		mismatch(t, "fork: returned %d, errno %d (%s)", (int)pid, e, strerror(e));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		_exit(fn(t, pfd[1], arg));
	}
	close(pfd[1]);
	if (pid > 0 && read(pfd[0], &c, 1) != 1)
		mismatch(t, "a child died before it closed its files");
	close(pfd[0]);
	return pid;
}

static int fork_child_fn(struct thread_ctx *t, int ready, void *arg)
{
	(void)arg;
	return fork_child(t, ready);
}

/* Exit status of a child, as mismatches (a signal is one). */
static void reap(struct thread_ctx *t, pid_t pid, const char *what)
{
	int status;

	if (pid <= 0)
		return;
	if (waitpid(pid, &status, 0) != pid) {
		mismatch(t, "waitpid of the %s: %s", what, strerror(errno));
		return;
	}
	__atomic_add_fetch(&t->res->children, 1, __ATOMIC_RELAXED);
	if (WIFSIGNALED(status))
		mismatch(t, "the %s died of signal %d", what, WTERMSIG(status));
	else if (WEXITSTATUS(status))
		__atomic_add_fetch(&t->res->mismatches, WEXITSTATUS(status), __ATOMIC_RELAXED);
}

struct victim {
	int go[2];	/* the victim says it starts its range */
	long us;	/* the killer waits this long after that */
	pid_t pid;
	bool huge;
};

/*
 * The victim: a big range of its own to private (4K pages, or THPs at 2M),
 * then back; its sibling kills it with SIGKILL somewhere in between.
 */
static int victim_fn(struct thread_ctx *t, int ready, void *arg)
{
	struct victim *v = arg;
	size_t len = (size_t)cfg.victim_mb << 20, n;
	__u64 done;
	char *m;
	int fd, ret;

	child_files(t->proc, t);
	close(v->go[0]);
	if (write(ready, "x", 1) != 1)
		return 1;
	close(ready);
	fd = snp_open();
	m = v->huge ? map_anon(len, SZ_2M, MADV_HUGEPAGE) : map_pages(len / SZ_4K);
	if (fd < 0 || !m)
		return 1;
	n = len / (v->huge ? SZ_2M : SZ_4K);
	if (write(v->go[1], "x", 1) != 1)
		return 1;
	ret = range(fd, m, n, 0x100000000ULL, 2, v->huge, true, &done);
	/* A THP the kernel could not give stops the range at EINVAL: fine. */
	if (ret && !(v->huge && ret == -EINVAL))
		return 2;
	range(fd, m, done, 0, 0, v->huge, false, NULL);
	return 0;
}

static int killer_fn(struct thread_ctx *t, int ready, void *arg)
{
	struct victim *v = arg;
	char c;

	child_files(t->proc, t);
	close(v->go[1]);
	if (write(ready, "x", 1) != 1)
		return 1;
	close(ready);
	if (read(v->go[0], &c, 1) == 1) {
		sleep_us(v->us);
		kill(v->pid, SIGKILL);
	}
	return 0;
}

/* Forks the children of a fork or kill operation (all threads held off). */
static void op_fork(struct thread_ctx *t, pid_t *pids)
{
	pids[0] = spawn(t, fork_child_fn, NULL);
	t->ok = pids[0] > 0;
}

static void op_kill(struct thread_ctx *t, struct victim *v, pid_t *pids)
{
	if (pipe2(v->go, O_CLOEXEC)) {
		mismatch(t, "pipe: %s", strerror(errno));
		return;
	}
	v->us = (long)rnd(t, 40000);
	v->huge = rnd(t, 2);
	v->pid = spawn(t, victim_fn, v);
	pids[0] = v->pid;
	if (v->pid > 0)
		pids[1] = spawn(t, killer_fn, v);
	close(v->go[0]);
	close(v->go[1]);
}

static void reap_victim(struct thread_ctx *t, pid_t *pids)
{
	int status;

	reap(t, pids[1], "killer");
	if (pids[0] <= 0)
		return;
	if (waitpid(pids[0], &status, 0) != pids[0]) {
		mismatch(t, "waitpid of the victim: %s", strerror(errno));
		return;
	}
	__atomic_add_fetch(&t->res->children, 1, __ATOMIC_RELAXED);
	t->ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
	if (t->ok)
		__atomic_add_fetch(&t->res->killed, 1, __ATOMIC_RELAXED);
	else if (WIFSIGNALED(status) || WEXITSTATUS(status))
		mismatch(t, "the victim ended with status %#x (range refused: exit 2)", status);
}

static int weight_total;

static enum op pick_op(struct thread_ctx *t)
{
	int w, k;

	w = (int)rnd(t, weight_total);
	for (k = 0; k < NR_OPS; k++) {
		w -= op_weight[k];
		if (w < 0)
			return k;
	}
	return OP_LOOKUP;
}

/* Thread 0 runs each process-wide operation at least once, whatever the dice say. */
static enum op forced_op(struct thread_ctx *t)
{
	long long n = t->ops;

	if (t->idx != 0 || n < 20)
		return NR_OPS;
	if (t->opno == n / 4)
		return OP_KILL;
	if (t->opno == n / 3)
		return OP_FORK;
	if (t->opno == n / 2)
		return OP_REOPEN;
	return NR_OPS;
}

static void run_op(struct thread_ctx *t, enum op op)
{
	struct proc *pr = t->proc;
	pid_t pids[2] = { 0, 0 };
	struct victim v;
	bool excl = op == OP_REOPEN || op == OP_FORK || op == OP_KILL || op == OP_AUDIT;

	t->cur = op;
	t->ok = false;
	if (excl)
		pthread_rwlock_wrlock(&pr->lock);
	else
		pthread_rwlock_rdlock(&pr->lock);
	switch (op) {
	case OP_LOOKUP:
		op_lookup(t);
		break;
	case OP_STORE:
		op_store(t);
		break;
	case OP_LOAD:
		op_load(t);
		break;
	case OP_PRIV4K:
		op_priv4k(t);
		break;
	case OP_SHARED4K:
		op_shared4k(t);
		break;
	case OP_PRIV2M:
		op_priv2m(t);
		break;
	case OP_SHARED2M:
		op_shared2m(t);
		break;
	case OP_PSMASH:
		op_psmash(t);
		break;
	case OP_RANGE_PRIV:
		op_range(t, false, true);
		break;
	case OP_RANGE_SHARED:
		op_range(t, false, false);
		break;
	case OP_RANGE_PRIV2M:
		op_range(t, true, true);
		break;
	case OP_RANGE_SHARED2M:
		op_range(t, true, false);
		break;
	case OP_REMAP:
		op_remap(t);
		break;
	case OP_AUDIT:
		op_audit(t);
		break;
	case OP_REOPEN:
		op_reopen(t);
		break;
	case OP_FORK:
		op_fork(t, pids);
		break;
	case OP_KILL:
		op_kill(t, &v, pids);
		break;
	default:
		break;
	}
	pthread_rwlock_unlock(&pr->lock);
	/* The children run on while the other threads go on. */
	if (op == OP_FORK)
		reap(t, pids[0], "fork child");
	else if (op == OP_KILL)
		reap_victim(t, pids);
	__atomic_add_fetch(&t->res->per_op[op], 1, __ATOMIC_RELAXED);
	if (t->ok)
		__atomic_add_fetch(&t->res->per_op_ok[op], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&t->res->ops, 1, __ATOMIC_RELAXED);
}

static void *thread_main(void *arg)
{
	struct thread_ctx *t = arg;
	enum op op;

	for (t->opno = 0; t->opno < t->ops && !t->stopped; t->opno++) {
		op = forced_op(t);
		if (op == NR_OPS)
			op = pick_op(t);
		run_op(t, op);
		if (cfg.verbose && t->opno % 1000 == 0)
			fprintf(stderr, "proc %d thread %d: %lld ops\n", t->proc->idx, t->idx,
				t->opno);
	}
	return NULL;
}

/*
 * The end of a worker: a sweep of every page against the model, the files
 * closed (which returns what they hold), and then every page shared (a
 * sample, through a new file) and VmPin down to what leaked.
 */
static void final_sweep(struct proc *pr, struct result *res)
{
	struct thread_ctx *t0 = &pr->threads[0];
	bool unc;
	size_t j;
	int i, k, s, fd;
	long long kb;
	__u64 want;

	for (i = 0; i < pr->nthreads; i++) {
		struct thread_ctx *t = &pr->threads[i];

		t->cur = OP_AUDIT;
		t->stopped = false;
		for (k = 0; k < R_KINDS; k++) {
			struct region *r = &t->reg[k];

			/* Every private page, and every 8th page of the rest. */
			for (j = 0; j < r->npages; j++) {
				if (j % 8 && r->pg[j].state == P_SHARED &&
				    !(r->nch && r->ch[j / PAGES_PER_2M].priv && j % 64 == 0))
					continue;
				lookup_page(t, r, j, pr->fds[j % MAX_SLOTS]);
				res->sweeps++;
			}
		}
	}
	audit(t0);
	for (s = 0; s < MAX_SLOTS; s++)
		close(pr->fds[s]);
	fd = snp_open();
	for (i = 0; i < pr->nthreads; i++) {
		struct thread_ctx *t = &pr->threads[i];

		for (k = 0; k < R_KINDS; k++) {
			struct region *r = &t->reg[k];

			for (j = 0; j < r->npages; j++)
				if (r->pg[j].state == P_PRIV)
					closed_page(t, r, j);
			for (s = 0; s < r->nch; s++)
				if (r->ch[s].priv)
					closed_chunk(t, r, s);
			for (j = 0; j < r->npages && fd >= 0; j += 7) {
				lookup_page(t, r, j, fd);
				res->sweeps++;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	want = proc_pinned(pr, &unc);
	kb = proc_status_kb(0, "VmPin");
	if (kb != (long long)want * 4 && !(unc && kb <= (long long)want * 4)) {
		fprintf(stderr, "proc %d: VmPin %lld kB after closing every file, %llu kB leaked\n",
			pr->idx, kb, (unsigned long long)want * 4);
		res->vmpin_lost = kb - (long long)want * 4;
	}
}

static int worker(int idx)
{
	struct result *res = &results[idx];
	struct proc pr = { .idx = idx, .nthreads = cfg.threads };
	struct thread_ctx *threads;
	pthread_t tid[MAX_THREADS];
	pthread_attr_t attr;
	long long per = cfg.ops / (cfg.procs * cfg.threads);
	int i, k;

	threads = calloc(cfg.threads, sizeof(*threads));
	if (!threads)
		return 1;
	pr.threads = threads;
	pthread_rwlock_init(&pr.lock, NULL);
	for (i = 0; i < MAX_SLOTS; i++) {
		pr.fds[i] = snp_open();
		if (pr.fds[i] < 0) {
			fprintf(stderr, "proc %d: open %s: %s\n", idx, SNP_DEV,
				strerror(-pr.fds[i]));
			return 1;
		}
	}
	for (i = 0; i < cfg.threads; i++) {
		struct thread_ctx *t = &threads[i];
		__u64 s = cfg.seed ^ ((__u64)idx << 40) ^ ((__u64)i << 24);

		t->proc = &pr;
		t->idx = i;
		t->res = res;
		t->rng = splitmix(&s);
		t->ops = per + (i == 0 ? cfg.ops % (cfg.procs * cfg.threads) * (idx == 0) : 0);
		for (k = 0; k < R_KINDS; k++) {
			if (region_init(&t->reg[k], k)) {
				fprintf(stderr, "proc %d thread %d: no memory for its regions\n",
					idx, i);
				return 1;
			}
		}
	}
	/* Small stacks: populate_cow_ranges() writes each in full after a fork. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	for (i = 0; i < cfg.threads; i++)
		if (pthread_create(&tid[i], &attr, thread_main, &threads[i]))
			return 1;
	for (i = 0; i < cfg.threads; i++)
		pthread_join(tid[i], NULL);
	final_sweep(&pr, res);
	return 0;
}

/* ---- the KVM guest next to the workers ---- */

static void kvm_runner(void)
{
	double start = now();
	int status;
	pid_t pid;

	do {
		fflush(NULL);
		pid = fork();
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			if (!cfg.verbose && null >= 0) {
				dup2(null, 1);
				dup2(null, 2);
			}
			execl(cfg.kvm_test, cfg.kvm_test, (char *)NULL);
			_exit(127);
		}
		__atomic_store_n(&kvm->cur, pid, __ATOMIC_SEQ_CST);
		if (pid < 0 || waitpid(pid, &status, 0) != pid)
			break;
		__atomic_store_n(&kvm->cur, 0, __ATOMIC_SEQ_CST);
		kvm->seconds = now() - start;
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
		    __atomic_load_n(&kvm->stop, __ATOMIC_SEQ_CST)) {
			/* Killed at the end of the stress: its memory must come back too. */
			kvm->killed++;
			break;
		}
		kvm->runs++;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			kvm->passed++;
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 4)
			kvm->skipped++;
		else
			kvm->failed++;
	} while (!__atomic_load_n(&kvm->stop, __ATOMIC_RELAXED) && !kvm->skipped);
}

/* ---- injection ---- */

#define FAIL_DIR_ROOT SNP_DEBUGFS

/* Sets @file in every fail_* directory of the module; returns how many. */
static int fail_attrs(const char *file, const char *val)
{
	char path[512];
	struct dirent *d;
	int n = 0;
	DIR *dir;

	dir = opendir(FAIL_DIR_ROOT);
	if (!dir)
		return 0;
	while ((d = readdir(dir))) {
		if (strncmp(d->d_name, "fail_", 5))
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", FAIL_DIR_ROOT, d->d_name, file);
		if (!write_str(path, val))
			n++;
	}
	closedir(dir);
	return n;
}

static void inject(bool on)
{
	char rate[16];
	int n;

	if (!cfg.inject)
		return;
	if (!on) {
		if (cfg.injecting)
			fail_attrs("probability", "0\n");
		cfg.injecting = false;
		return;
	}
	snprintf(rate, sizeof(rate), "%d\n", cfg.inject);
	fail_attrs("interval", "1\n");
	fail_attrs("times", "-1\n");
	fail_attrs("verbose", "0\n");
	n = fail_attrs("probability", rate);
	if (!n) {
		printf("stress: injection skipped: no fault attributes (fail_*/) under %s\n",
		       FAIL_DIR_ROOT);
		return;
	}
	cfg.injecting = true;
	printf("stress: injecting failures at %d%% through %d fault attributes\n", cfg.inject, n);
}

/* ---- the end ---- */

struct snapshot {
	struct snp_host_stats st;
	struct snp_host_kvm_stats kst;
	bool has_kst;
	long long dm4k, dm2m, dm1g;
	long long pins;
};

static void snapshot(int fd, struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	snp_get_stats(fd, &s->st);
	s->has_kst = !snp_ioctl(fd, SNP_HOST_GET_KVM_STATS, &s->kst);
	s->dm4k = meminfo_read("DirectMap4k");
	s->dm2m = meminfo_read("DirectMap2M");
	s->dm1g = meminfo_read("DirectMap1G");
	s->pins = foll_pins_held();
}

static const char * const splat_words[] = {
	"BUG:", "WARNING:", "Oops", "KASAN", "KFENCE: ", "UBSAN", "possible circular locking",
	"possible recursive locking", "inconsistent lock state", "suspicious RCU usage",
	"lock held when returning", "INFO: lockdep is turned off", "Call Trace",
	"Kernel panic", "general protection fault", "RCU stall", "self-detected stall",
	"detected stalls", "soft lockup", "hard LOCKUP", "blocked for more than", "hung_task",
};

/* Kernel-log records after @seq0 that are splats (the patterns of tap-summary.py). */
static long long count_splats(long long seq0)
{
	unsigned long long seq;
	char rec[8192];
	long long n = 0;
	ssize_t got;
	size_t k;
	int fd;

	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while ((got = read(fd, rec, sizeof(rec) - 1)) > 0 || (got < 0 && errno == EPIPE)) {
		if (got <= 0)
			continue;
		rec[got] = '\0';
		if (sscanf(rec, "%*u,%llu,", &seq) != 1 || (long long)seq <= seq0)
			continue;
		for (k = 0; k < ARRAY_SIZE(splat_words); k++) {
			if (strstr(rec, splat_words[k])) {
				const char *text = strchr(rec, ';');

				fprintf(stderr, "splat: %s", text ? text + 1 : rec);
				n++;
				break;
			}
		}
	}
	close(fd);
	return n;
}

static void bad_args(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-n ops] [-s seed] [-p procs] [-t threads] [-i rate%%] [-k kvm-test] [-K victim-MiB] [-v]\n",
		argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	long long ops = 0, mism = 0, lost = 0, splats, leaked = 0, uncertain = 0, thp_lost = 0;
	long long per_op[NR_OPS] = { 0 }, per_op_ok[NR_OPS] = { 0 };
	long long sweeps = 0, children = 0, killed = 0, nr_huge;
	struct snapshot s0, s1;
	struct snp_host_status status;
	pid_t pids[MAX_PROCS], kvm_pid = 0;
	long long seq0;
	int fd, i, k, opt, tries;
	double t0, t1;
	char *text, *p;
	long long leaked_now, allowed;
	bool injecting;

	cfg.seed = (__u64)time(NULL);
	while ((opt = getopt(argc, argv, "n:s:p:t:i:k:K:v")) != -1) {
		switch (opt) {
		case 'n':
			cfg.ops = atoll(optarg);
			break;
		case 's':
			cfg.seed = strtoull(optarg, NULL, 0);
			break;
		case 'p':
			cfg.procs = atoi(optarg);
			break;
		case 't':
			cfg.threads = atoi(optarg);
			break;
		case 'i':
			cfg.inject = atoi(optarg);
			break;
		case 'k':
			cfg.kvm_test = optarg;
			break;
		case 'K':
			cfg.victim_mb = atol(optarg);
			break;
		case 'v':
			cfg.verbose = 1;
			break;
		default:
			bad_args(argv[0]);
		}
	}
	if (cfg.procs < 1 || cfg.procs > MAX_PROCS || cfg.threads < 1 ||
	    cfg.threads > MAX_THREADS || cfg.ops < 1 || cfg.victim_mb < 1)
		bad_args(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = snp_open();
	if (fd < 0) {
		printf("stress: cannot open %s: %s\n", SNP_DEV, strerror(-fd));
		return 1;
	}
	if (snp_get_status(fd, &status)) {
		printf("stress: GET_STATUS: %s\n", strerror(errno));
		return 1;
	}
	cfg.hooks = status.flags & SNP_HOST_FLAG_KERNEL_HOOKS;
	if (!cfg.hooks) {
		/* Without the hooks a store to a guest page does not fault here. */
		printf("stress: skipped: %s\n",
		       "the kernel's fault path does not call snp_host (no SNP_HOST_FLAG_KERNEL_HOOKS)");
		return 4;
	}
	text = read_text(SNP_DEBUGFS_STATUS);
	p = text ? strstr(text, "max_asid: ") : NULL;
	cfg.max_asid = p ? (__u32)strtoul(p + 10, NULL, 10) : 1;
	free(text);
	if (catch_sigbus())
		return 1;
	for (k = 0; k < NR_OPS; k++)
		weight_total += op_weight[k];
	nr_huge = read_ll(NR_HUGEPAGES);
	if (nr_huge >= 0 && meminfo_read("Hugepagesize") == 2048 &&
	    !write_ll(NR_HUGEPAGES, nr_huge + cfg.procs * cfg.threads + 2))
		cfg.hugetlb = true;
	results = mmap(NULL, sizeof(*results) * (MAX_PROCS + 1) + sizeof(*kvm),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (results == MAP_FAILED)
		return 1;
	kvm = (struct kvm_result *)(results + MAX_PROCS + 1);
	printf("stress: seed %llu, %lld operations, %d processes x %d threads\n",
	       (unsigned long long)cfg.seed, cfg.ops, cfg.procs, cfg.threads);
	printf("stress: hugetlbfs %s, directmap policy %u, max ASID %u\n",
	       cfg.hugetlb ? "yes" : "no", status.directmap_policy, cfg.max_asid);

	snapshot(fd, &s0);
	seq0 = kmsg_last_seq();
	inject(true);
	t0 = now();
	if (cfg.kvm_test && !access(cfg.kvm_test, X_OK) && !access("/dev/kvm", R_OK)) {
		fflush(NULL);
		kvm_pid = fork();
		if (kvm_pid == 0) {
			close(fd);
			kvm_runner();
			_exit(0);
		}
	} else if (cfg.kvm_test) {
		printf("stress: no KVM guest: %s or /dev/kvm is missing\n", cfg.kvm_test);
	}
	for (i = 0; i < cfg.procs; i++) {
		fflush(NULL);
		pids[i] = fork();
		if (pids[i] == 0) {
			close(fd);
			_exit(worker(i));
		}
	}
	for (i = 0; i < cfg.procs; i++) {
		int st;

		if (pids[i] < 0 || waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) ||
		    WEXITSTATUS(st)) {
			printf("stress: worker %d failed (status %#x)\n", i, pids[i] < 0 ? -1 : st);
			mism++;
		}
	}
	t1 = now();
	if (kvm_pid > 0) {
		pid_t cur;

		__atomic_store_n(&kvm->stop, 1, __ATOMIC_SEQ_CST);
		/* Once one run passed, the one in flight is killed (a VM that dies). */
		cur = __atomic_load_n(&kvm->cur, __ATOMIC_SEQ_CST);
		if (cur > 0 && __atomic_load_n(&kvm->runs, __ATOMIC_SEQ_CST))
			kill(cur, SIGKILL);
		waitpid(kvm_pid, NULL, 0);
		printf("stress: KVM guest %s: %lld runs in %.1f s\n", cfg.kvm_test, kvm->runs,
		       kvm->seconds);
		printf("stress: KVM guest: %lld passed, %lld skipped, %lld failed, %lld killed\n",
		       kvm->passed, kvm->skipped, kvm->failed, kvm->killed);
		/* An injected failure may fail the guest's own conversions. */
		if (!cfg.injecting)
			mism += kvm->failed;
	}
	injecting = cfg.injecting;
	inject(false);

	for (i = 0; i < cfg.procs; i++) {
		struct result *r = &results[i];

		ops += r->ops;
		mism += r->mismatches;
		leaked += r->leaked;
		uncertain += r->uncertain;
		thp_lost += r->thp_lost;
		sweeps += r->sweeps;
		children += r->children;
		killed += r->killed;
		lost += r->vmpin_lost > 0 ? r->vmpin_lost / 4 : 0;
		for (k = 0; k < NR_OPS; k++) {
			per_op[k] += r->per_op[k];
			per_op_ok[k] += r->per_op_ok[k];
		}
	}
	/* ok: succeeded; a store: no SIGBUS; a LOOKUP: found the page private. */
	printf("stress: %-28s %8s %8s\n", "operation", "count", "ok");
	for (k = 0; k < NR_OPS; k++)
		printf("stress: %-28s %8lld %8lld\n", op_name[k], per_op[k], per_op_ok[k]);
	printf("stress: %lld LOOKUPs in the final sweeps, %lld children checked\n",
	       sweeps, children);
	printf("stress: %lld victims killed mid-range, %lld THPs split by the kernel\n",
	       killed, thp_lost);
	printf("stress: %.1f s, %.0f operations/s\n", t1 - t0, ops / (t1 - t0 > 0 ? t1 - t0 : 1));

	/* Pages of exiting processes and guests go back as their files close. */
	for (tries = 0; tries < 100; tries++) {
		snapshot(fd, &s1);
		if (!s1.st.private_4k && !s1.st.private_2m &&
		    (!s1.has_kst || !s1.kst.private_4k_now) && s1.pins == s0.pins)
			break;
		sleep_us(100000);
	}
	if (s1.st.private_4k || s1.st.private_2m) {
		printf("stress: still private at the end: %llu 4K and %llu 2M pages\n",
		       (unsigned long long)s1.st.private_4k, (unsigned long long)s1.st.private_2m);
		lost += s1.st.private_4k + PAGES_PER_2M * s1.st.private_2m;
	}
	if (s1.has_kst && s1.kst.private_4k_now) {
		printf("stress: still private for KVM: %llu pages\n",
		       (unsigned long long)s1.kst.private_4k_now);
		lost += s1.kst.private_4k_now;
	}
	if ((long long)(s1.st.leaked_pages - s0.st.leaked_pages) > leaked + uncertain &&
	    !injecting) {
		printf("stress: %llu pages leaked, the model expected %lld (and %lld uncertain)\n",
		       (unsigned long long)(s1.st.leaked_pages - s0.st.leaked_pages), leaked,
		       uncertain);
		lost += s1.st.leaked_pages - s0.st.leaked_pages - leaked - uncertain;
	} else if ((long long)(s1.st.leaked_pages - s0.st.leaked_pages) < leaked) {
		printf("stress: %llu pages leaked, the model expected %lld\n",
		       (unsigned long long)(s1.st.leaked_pages - s0.st.leaked_pages), leaked);
		mism++;
	}
	if (s1.has_kst && s1.kst.leaked_pages != s0.kst.leaked_pages) {
		printf("stress: KVM pages leaked: %llu\n",
		       (unsigned long long)(s1.kst.leaked_pages - s0.kst.leaked_pages));
		if (!injecting)
			lost += s1.kst.leaked_pages - s0.kst.leaked_pages;
	}
	/*
	 * With failures injected, children and closes leak pages the model cannot
	 * name; then every page out of the direct map or still pinned must be one
	 * the module counted as leaked.
	 */
	leaked_now = (long long)(s1.st.leaked_pages - s0.st.leaked_pages) +
		     (s1.has_kst ? (long long)(s1.kst.leaked_pages - s0.kst.leaked_pages) : 0);
	allowed = injecting ? leaked_now : leaked + uncertain;
	if (s1.st.dm_unmapped_pages != s0.st.dm_unmapped_pages) {
		printf("stress: %llu pages out of the direct map at the end, %llu at the start\n",
		       (unsigned long long)s1.st.dm_unmapped_pages,
		       (unsigned long long)s0.st.dm_unmapped_pages);
		if ((long long)(s1.st.dm_unmapped_pages - s0.st.dm_unmapped_pages) > allowed)
			lost += s1.st.dm_unmapped_pages - s0.st.dm_unmapped_pages - allowed;
	}
	printf("stress: nr_foll_pin_acquired - released: %lld at the start, %lld at the end\n",
	       s0.pins, s1.pins);
	if (s1.pins - s0.pins > allowed)
		lost += s1.pins - s0.pins - allowed;
	else if (s1.pins < s0.pins)
		mism++;
	printf("stress: DirectMap4k %lld -> %lld kB, 2M %lld -> %lld kB, 1G %lld -> %lld kB\n",
	       s0.dm4k, s1.dm4k, s0.dm2m, s1.dm2m, s0.dm1g, s1.dm1g);
	if (status.directmap_policy == SNP_HOST_DIRECTMAP_COALESCE && !leaked_now &&
	    (s0.dm4k != s1.dm4k || s0.dm2m != s1.dm2m || s0.dm1g != s1.dm1g)) {
		printf("stress: the direct map did not merge back (directmap=coalesce)\n");
		mism++;
	}
	if (__atomic_load_n(&stray_sigbus, __ATOMIC_RELAXED)) {
		printf("stress: a SIGBUS arrived that no store raised\n");
		mism++;
	}
	printf("stress: leaked: %lld (module), %lld (KVM); the model: %lld (+%lld uncertain)\n",
	       (long long)(s1.st.leaked_pages - s0.st.leaked_pages),
	       s1.has_kst ? (long long)(s1.kst.leaked_pages - s0.kst.leaked_pages) : 0,
	       leaked, uncertain);
	if (lost) {
		/* What the module says it still holds, for whoever reads the failure. */
		struct rmp_table rt;
		size_t e, assigned = 0, leaked_2m = 0;

		text = read_text(SNP_DEBUGFS_STATUS);
		if (text)
			printf("stress: debugfs status at the end:\n%s", text);
		free(text);
		if (!rmp_table_read(&rt)) {
			for (e = 0; e < rt.n; e++) {
				assigned += rt.e[e].assigned;
				leaked_2m += rt.e[e].assigned && rt.e[e].is_2m;
			}
			printf("stress: debugfs rmp: %zu entries, %zu assigned (%zu at 2M)\n", rt.n,
			       assigned, leaked_2m);
			rmp_table_free(&rt);
		}
	}
	if (nr_huge >= 0)
		write_ll(NR_HUGEPAGES, nr_huge);
	close(fd);
	splats = count_splats(seq0);
	printf("stress: seed %llu\n", (unsigned long long)cfg.seed);
	printf("stress: %lld operations, %lld mismatches, %lld splats, %lld pages lost\n",
	       ops, mism, splats, lost);
	return mism || splats || lost ? 1 : 0;
}
