// SPDX-License-Identifier: GPL-2.0
/*
 * snp_host RMP fault selftests (issue 9): real stores to guest-owned pages
 * and to the pages around them.
 *
 * Each test makes pages of its own private through /dev/snp_host and then
 * stores to them with ordinary store instructions, from user mode, from the
 * kernel on our behalf (read(2), futex, /proc/self/mem, ptrace,
 * process_vm_writev, MADV_POPULATE_WRITE, mprotect) and through the direct
 * map (debugfs kwrite).  A store that must fail is caught as SIGBUS with
 * sigsetjmp(); its siginfo (si_addr, si_code) and the page-fault frame
 * (trap number, error code, CR2) are checked, and so is the data, which
 * must be what it was.  What happened to the mapping is read from the
 * kernel's own view, not the module's: AnonHugePages in /proc/self/smaps,
 * thp_split_pmd in /proc/vmstat, the PFNs of /proc/self/pagemap and the THP
 * bits of /proc/kpageflags.  The module's GET_FAULT_STATS counters are
 * compared as deltas (they are module-wide).
 *
 * Without SNP_HOST_FLAG_KERNEL_HOOKS the kernel's fault path does not call
 * the module: a store to a guest page would loop forever on SNP hardware
 * and simply succeed with the emulated RMP, so every test skips.  Runs as
 * root.  Every test gives its pages back and closes its files on the way
 * out, on failure too (the fixture's teardown).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/futex.h>

#include "kselftest_harness.h"
#include "snp_host_check.h"

#define ASID			1
#define MAX_HELD		16
#define MAX_MAPS		16
#define MAX_FDS			8
#define ALARM_S			20	/* a test that hangs dies of SIGALRM */
#define KMSG_REC		8192	/* a kernel-log record, as kmsg_scan() reads it */

/* The page-fault error code bits of the x86 signal frame. */
#define X86_TRAP_PF		14
#define X86_PF_WRITE		0x2UL
#define X86_PF_USER		0x4UL
#define X86_PF_RMP		0x80000000UL

/*
 * What the SIGBUS handler saw.  One per thread: a store faults in the
 * thread that made it, and the handler jumps back into that thread's
 * store_byte().
 */
struct catcher {
	sigjmp_buf jb;
	int armed;
	void *addr;
	int code;
	long trapno;
	unsigned long err;
	unsigned long cr2;
};

static __thread struct catcher catcher;

/* SIGBUS outside store_byte()/load_byte(): sent, not taken by a store. */
static int stray_sigbus;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	struct catcher *c = &catcher;
	ucontext_t *uc = ctx;

	if (!__atomic_load_n(&c->armed, __ATOMIC_RELAXED)) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		/*
		 * Not ours to catch: count it, and let a faulting instruction
		 * that runs again kill us, so the harness reports it.
		 */
		__atomic_add_fetch(&stray_sigbus, 1, __ATOMIC_RELAXED);
		sigaction(sig, &dfl, NULL);
		return;
	}
	__atomic_store_n(&c->armed, 0, __ATOMIC_RELAXED);
	c->addr = si->si_addr;
	c->code = si->si_code;
#ifdef __x86_64__
	c->trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
	c->err = uc->uc_mcontext.gregs[REG_ERR];
	c->cr2 = uc->uc_mcontext.gregs[REG_CR2];
#else
	(void)uc;
#endif
	siglongjmp(c->jb, 1);
}

static int catch_sigbus(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL) ? -errno : 0;
}

/* One store instruction of @v at @addr: 0, or -1 if it raised SIGBUS. */
static int store_byte(char *addr, char v)
{
	struct catcher *c = &catcher;

	c->addr = NULL;
	c->code = 0;
	if (sigsetjmp(c->jb, 1))
		return -1;
	__atomic_store_n(&c->armed, 1, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(addr, v, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&c->armed, 0, __ATOMIC_RELAXED);
	return 0;
}

/* One load instruction from @addr into *@v: 0, or -1 if it raised SIGBUS. */
static int load_byte(const char *addr, char *v)
{
	struct catcher *c = &catcher;

	c->addr = NULL;
	if (sigsetjmp(c->jb, 1))
		return -1;
	__atomic_store_n(&c->armed, 1, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	*v = __atomic_load_n(addr, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&c->armed, 0, __ATOMIC_RELAXED);
	return 0;
}

/* Pages a test made private, given back by the teardown if still there. */
struct held {
	int fd;
	char *hva;
	size_t npages;	/* 4K pages from hva */
};

struct mapping {
	void *addr;
	size_t len;
};

/* What a test holds, for the helpers and the teardown. */
struct fault_ctx {
	struct env env;
	struct snp_host_status status;
	struct held held[MAX_HELD];
	int nheld;
	struct mapping map[MAX_MAPS];
	int nmap;
	int fds[MAX_FDS];	/* other files of the test, closed by the teardown */
	int nfds;
	int fd2;		/* a second file, when a test needs one */
	pid_t child;		/* a child to kill, when a test has one */
	long long huge_nr;	/* nr_hugepages to put back, -1: untouched */
	bool force_retry;	/* debugfs force_retry to switch off */
};

FIXTURE(fault)
{
	struct fault_ctx ctx;
};

FIXTURE_SETUP(fault)
{
	struct fault_ctx *ctx = &self->ctx;
	const struct snp_host_status *s = &ctx->status;
	struct snp_host_fault_stats fs;
	int ret;

	ctx->env.fd = -1;
	ctx->fd2 = -1;
	ctx->huge_nr = -1;
	if (geteuid())
		SKIP(return, "needs root (pagemap PFNs, kpageflags, the device)");
	if (access(SNP_MODULE_DIR, F_OK))
		SKIP(return, "snp_host.ko is not loaded");
	ctx->env.fd = snp_open();
	ASSERT_LE(0, ctx->env.fd) TH_LOG("open %s: %s", SNP_DEV, strerror(-ctx->env.fd));
	ASSERT_EQ(0, snp_get_status(ctx->env.fd, &ctx->status));
	if (!(s->flags & SNP_HOST_FLAG_KERNEL_HOOKS))
		SKIP(return,
		     "no SNP_HOST_FLAG_KERNEL_HOOKS: the kernel's fault path does not call snp_host (no hook patches), so a store to a guest page would %s",
		     s->backend == SNP_HOST_BACKEND_HARDWARE ?
		     "fault forever" : "not fault at all");
	ret = snp_get_fault_stats(ctx->env.fd, &fs);
	ASSERT_EQ(0, ret) TH_LOG("GET_FAULT_STATS with the hooks present: %s",
				 strerror(-ret));
	ASSERT_EQ(0, catch_sigbus());
	ctx->env.debugfs = debugfs_mounted() && !access(SNP_DEBUGFS, F_OK);
}

/* Gives back every page of @h that is still private, whatever its level. */
static void release(const struct held *h)
{
	size_t i;

	for (i = 0; i + PAGES_PER_2M <= h->npages; i += PAGES_PER_2M)
		if (!(((unsigned long)h->hva + i * SZ_4K) & (SZ_2M - 1)))
			snp_make_shared(h->fd, h->hva + i * SZ_4K, SNP_HOST_LEVEL_2M);
	for (i = 0; i < h->npages; i++)
		snp_make_shared(h->fd, h->hva + i * SZ_4K, SNP_HOST_LEVEL_4K);
}

FIXTURE_TEARDOWN(fault)
{
	struct fault_ctx *ctx = &self->ctx;
	int i;

	if (ctx->child > 0) {
		kill(ctx->child, SIGKILL);
		waitpid(ctx->child, NULL, 0);
	}
	if (ctx->force_retry)
		write_str(SNP_DEBUGFS_FORCE_RETRY, "0\n");
	for (i = ctx->nheld - 1; i >= 0; i--)
		release(&ctx->held[i]);
	if (ctx->fd2 >= 0)
		close(ctx->fd2);
	for (i = 0; i < ctx->nfds; i++)
		close(ctx->fds[i]);
	if (ctx->env.fd >= 0)
		close(ctx->env.fd);
	/* Unmapped only now: a page still private (pinned) is not freed. */
	for (i = 0; i < ctx->nmap; i++)
		munmap(ctx->map[i].addr, ctx->map[i].len);
	if (ctx->huge_nr >= 0)
		write_ll(NR_HUGEPAGES, ctx->huge_nr);
	/*
	 * No TH_LOG() on the EXPECT: run from a failed ASSERT, the harness
	 * would print it whatever the outcome.
	 */
	if (__atomic_load_n(&stray_sigbus, __ATOMIC_RELAXED))
		TH_LOG("a SIGBUS arrived that no store of the test raised");
	EXPECT_EQ(0, __atomic_load_n(&stray_sigbus, __ATOMIC_RELAXED));
}

static void add_map(struct __test_metadata *_metadata, struct fault_ctx *ctx,
		    void *addr, size_t len)
{
	ASSERT_GT(MAX_MAPS, ctx->nmap);
	ctx->map[ctx->nmap++] = (struct mapping){ .addr = addr, .len = len };
}

/* Keeps @fd (which must be open) for the teardown to close; returns it. */
static int keep_fd(struct __test_metadata *_metadata, struct fault_ctx *ctx, int fd)
{
	ASSERT_LE(0, fd) TH_LOG("open: %s", strerror(errno));
	ASSERT_GT(MAX_FDS, ctx->nfds);
	ctx->fds[ctx->nfds++] = fd;
	return fd;
}

/* Closes the second file; the teardown forgets the pages held through it. */
static void close_fd2(struct __test_metadata *_metadata, struct fault_ctx *ctx)
{
	int i;

	for (i = 0; i < ctx->nheld; i++)
		if (ctx->held[i].fd == ctx->fd2)
			ctx->held[i].npages = 0;
	ASSERT_EQ(0, close(ctx->fd2));
	ctx->fd2 = -1;
}

/* Remembers @npages 4K pages from @hva as possibly private through @fd. */
static void hold(struct __test_metadata *_metadata, struct fault_ctx *ctx,
		 int fd, char *hva, size_t npages)
{
	ASSERT_GT(MAX_HELD, ctx->nheld);
	ctx->held[ctx->nheld++] = (struct held){ .fd = fd, .hva = hva,
						   .npages = npages };
}

static void make_private(struct __test_metadata *_metadata,
			 struct fault_ctx *ctx, int fd, char *hva,
			 __u64 gpa, __u8 level)
{
	int ret;

	hold(_metadata, ctx, fd, hva, level ? PAGES_PER_2M : 1);
	ret = snp_make_private(fd, hva, gpa, ASID, level);
	ASSERT_EQ(0, ret) TH_LOG("MAKE_PRIVATE %p level %u: %s", hva, level,
				 strerror(-ret));
}

static void make_shared(struct __test_metadata *_metadata, int fd, char *hva,
			__u8 level)
{
	int ret = snp_make_shared(fd, hva, level);

	ASSERT_EQ(0, ret) TH_LOG("MAKE_SHARED %p level %u: %s", hva, level,
				 strerror(-ret));
}

/* @n 4K pages of their own (never a THP), every page written once. */
static char *get_pages(struct __test_metadata *_metadata,
		       struct fault_ctx *ctx, size_t n)
{
	char *p = map_pages(n);

	ASSERT_NE(NULL, p);
	add_map(_metadata, ctx, p, n * SZ_4K);
	return p;
}

static const char *thp_why(int ret)
{
	return ret == -ENOTSUP ? "THP is disabled ([never])" :
				 "the kernel did not give a PMD-mapped THP";
}

/*
 * A PMD-mapped THP (thp_alloc() checks it through smaps, kpageflags and
 * pagemap), then MADV_NOHUGEPAGE so that khugepaged never collapses it
 * again behind the test's back once a fault has split its mapping.
 */
static int get_thp(struct __test_metadata *_metadata, struct fault_ctx *ctx,
		   struct thp *t)
{
	int ret = thp_alloc(t);

	if (ret)
		return ret;
	add_map(_metadata, ctx, t->base, SZ_2M);
	ASSERT_EQ(0, madvise(t->base, SZ_2M, MADV_NOHUGEPAGE));
	ASSERT_TRUE(thp_intact(t)) TH_LOG("MADV_NOHUGEPAGE changed the mapping");
	return 0;
}

/* How many of the 512 PFNs behind @t are no longer the head PFN + i. */
static int thp_pfns_moved(struct __test_metadata *_metadata, const struct thp *t)
{
	__u64 pfns[PAGES_PER_2M];
	int i, moved = 0;

	ASSERT_EQ(0, pagemap_pfns(t->base, PAGES_PER_2M, pfns));
	for (i = 0; i < PAGES_PER_2M; i++)
		moved += pfns[i] != t->pfn + i;
	return moved;
}

static long long split_pmd_count(struct __test_metadata *_metadata)
{
	long long n = vmstat_read("thp_split_pmd");

	ASSERT_LE(0, n) TH_LOG("no thp_split_pmd in /proc/vmstat");
	return n;
}

/*
 * A store to @addr must raise SIGBUS: BUS_ADRERR at exactly @addr, from a
 * page fault of a user-mode write (x86: trap 14, error code with WRITE and
 * USER, CR2 = @addr; with RMP as well on the hardware backend), and the byte
 * there must be what it was.
 */
static void expect_sigbus(struct __test_metadata *_metadata,
			  struct fault_ctx *ctx, char *addr, const char *what)
{
	bool faulted;
	char old, now;

	ASSERT_EQ(0, load_byte(addr, &old)) TH_LOG("%s: a read of %p faulted", what, addr);
	faulted = store_byte(addr, (char)~old) < 0;
	EXPECT_TRUE(faulted) TH_LOG("%s: a store to %p succeeded", what, addr);
	if (faulted) {
		EXPECT_EQ((unsigned long)addr, (unsigned long)catcher.addr)
			TH_LOG("%s: si_addr %p, the store was at %p", what, catcher.addr, addr);
		EXPECT_EQ(BUS_ADRERR, catcher.code) TH_LOG("%s: si_code", what);
#ifdef __x86_64__
		EXPECT_EQ(X86_TRAP_PF, catcher.trapno) TH_LOG("%s: not a page fault", what);
		EXPECT_EQ(X86_PF_WRITE | X86_PF_USER,
			  catcher.err & (X86_PF_WRITE | X86_PF_USER))
			TH_LOG("%s: error code 0x%lx", what, catcher.err);
		EXPECT_EQ((unsigned long)addr, catcher.cr2) TH_LOG("%s: cr2", what);
		if (ctx->status.backend == SNP_HOST_BACKEND_HARDWARE)
			EXPECT_TRUE(!!(catcher.err & X86_PF_RMP))
				TH_LOG("%s: error code 0x%lx without RMP", what, catcher.err);
#endif
	}
	ASSERT_EQ(0, load_byte(addr, &now)) TH_LOG("%s: a read of %p faulted", what, addr);
	EXPECT_EQ(old, now) TH_LOG("%s: the refused store changed the page", what);
}

/* A store of @v to @addr must succeed and stay there. */
static void expect_store(struct __test_metadata *_metadata, char *addr, char v,
			 const char *what)
{
	bool ok = !store_byte(addr, v);

	EXPECT_TRUE(ok) TH_LOG("%s: SIGBUS at %p (si_addr %p, si_code %d)", what,
			       addr, catcher.addr, catcher.code);
	if (ok)
		EXPECT_EQ(v, *addr) TH_LOG("%s: the store did not stay", what);
}

/* Stores to each 4K page of @n from @base except @skip; returns how many faulted. */
static int store_pages(char *base, int n, int skip, int off, char v)
{
	int i, faulted = 0;

	for (i = 0; i < n; i++)
		if (i != skip)
			faulted += !!store_byte(base + (size_t)i * SZ_4K + off, v);
	return faulted;
}

/* Reads one byte of each 4K page of @n from @base; returns how many faulted. */
static int load_pages(const char *base, int n, int off)
{
	int i, faulted = 0;
	char v;

	for (i = 0; i < n; i++)
		faulted += !!load_byte(base + (size_t)i * SZ_4K + off, &v);
	return faulted;
}

/* The change of each fault counter from @a to @b. */
struct fault_delta {
	long long user_faults;
	long long thp_splits;
	long long sigbus;
	long long no_progress;
	long long uaccess_refused;
	long long gup_refused;
	long long kernel_faults;
};

static struct fault_delta fdelta(const struct snp_host_fault_stats *a,
				 const struct snp_host_fault_stats *b)
{
	return (struct fault_delta){
		.user_faults = (long long)(b->user_faults - a->user_faults),
		.thp_splits = (long long)(b->thp_splits - a->thp_splits),
		.sigbus = (long long)(b->sigbus - a->sigbus),
		.no_progress = (long long)(b->no_progress - a->no_progress),
		.uaccess_refused = (long long)(b->uaccess_refused - a->uaccess_refused),
		.gup_refused = (long long)(b->gup_refused - a->gup_refused),
		.kernel_faults = (long long)(b->kernel_faults - a->kernel_faults),
	};
}

TEST_F(fault, status_flags)
{
	struct fault_ctx *ctx = &self->ctx;
	const struct snp_host_status *s = &ctx->status;
	struct snp_host_fault_stats fs;
	size_t i;

	if (s->backend == SNP_HOST_BACKEND_EMULATED)
		EXPECT_TRUE(!!(s->flags & SNP_HOST_FLAG_USER_WP))
			TH_LOG("emulated backend without SNP_HOST_FLAG_USER_WP: %s",
			       "nothing makes a store to a guest page fault");
	read_fault_stats(_metadata, ctx->env.fd, &fs);
	for (i = 0; i < ARRAY_SIZE(fs.reserved); i++)
		EXPECT_EQ(0ULL, fs.reserved[i]) TH_LOG("reserved[%zu]", i);
	/* no_progress counts a kind of SIGBUS. */
	EXPECT_LE(fs.no_progress, fs.sigbus);
	EXPECT_EQ(-EFAULT, snp_ioctl(ctx->env.fd, SNP_HOST_GET_FAULT_STATS, NULL));
	EXPECT_EQ(-EFAULT, snp_ioctl(ctx->env.fd, SNP_HOST_GET_FAULT_STATS,
				     (void *)16));
}

/*
 * Behaviour 1, 2 and 7 for a 4K page inside a THP: MAKE_PRIVATE leaves the
 * mapping huge, the first store to a neighbour splits it (exactly once), the
 * other neighbours are then written without a fault, the private page keeps
 * faulting, and no PFN moves.
 */
TEST_F(fault, thp_lazy_split)
{
	struct fault_ctx *ctx = &self->ctx;
	const int k = 5;
	struct snp_host_fault_stats f0, f1, f2, f3, f4;
	char saved[SZ_4K], *priv, *nb;
	long long split0;
	struct thp t;
	int ret;

	ret = get_thp(_metadata, ctx, &t);
	if (ret)
		SKIP(return, "%s", thp_why(ret));
	priv = t.base + k * SZ_4K;
	nb = t.base + (k + 1) * SZ_4K;
	split0 = split_pmd_count(_metadata);
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	make_private(_metadata, ctx, ctx->env.fd, priv, 0x10005000ULL, 0);
	EXPECT_TRUE(thp_intact(&t)) TH_LOG("MAKE_PRIVATE split or moved the THP");
	EXPECT_EQ(split0, split_pmd_count(_metadata));
	memcpy(saved, priv, SZ_4K);

	/* Reads never fault, the private page's included. */
	EXPECT_EQ(0, load_pages(t.base, PAGES_PER_2M, 0));
	EXPECT_EQ(0, load_pages(t.base, PAGES_PER_2M, SZ_4K - 1));
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_EQ(0LL, fdelta(&f0, &f1).user_faults) TH_LOG("reads took RMP faults");
	EXPECT_EQ(0LL, fdelta(&f0, &f1).sigbus);
	EXPECT_TRUE(thp_intact(&t)) TH_LOG("reads split the THP");

	/* The first store to a shared neighbour splits the PMD and succeeds. */
	expect_store(_metadata, nb + 7, 0x5a, "first store to a neighbour");
	read_fault_stats(_metadata, ctx->env.fd, &f2);
	EXPECT_EQ(split0 + 1, split_pmd_count(_metadata));
	EXPECT_EQ(1LL, fdelta(&f1, &f2).thp_splits);
	EXPECT_EQ(1LL, fdelta(&f1, &f2).user_faults);
	EXPECT_EQ(0LL, fdelta(&f1, &f2).sigbus);
	EXPECT_EQ(0L, smaps_anon_huge_kb(t.base)) TH_LOG("still PMD-mapped");
	EXPECT_EQ(0, thp_pfns_moved(_metadata, &t));

	/* Split once for all: the 510 other neighbours take no RMP fault. */
	EXPECT_EQ(0, store_pages(t.base, PAGES_PER_2M, k, 9, 0x6b));
	read_fault_stats(_metadata, ctx->env.fd, &f3);
	EXPECT_EQ(0LL, fdelta(&f2, &f3).user_faults)
		TH_LOG("stores to neighbours after the split took RMP faults");
	EXPECT_EQ(0LL, fdelta(&f2, &f3).thp_splits);
	EXPECT_EQ(0LL, fdelta(&f2, &f3).sigbus);
	EXPECT_EQ(split0 + 1, split_pmd_count(_metadata));

	/* The private page is still protected, and untouched. */
	expect_sigbus(_metadata, ctx, priv + 0x123, "private page after the split");
	expect_sigbus(_metadata, ctx, priv + SZ_4K - 1, "last byte of the private page");
	EXPECT_EQ(0, memcmp(saved, priv, SZ_4K));
	EXPECT_EQ(0, thp_pfns_moved(_metadata, &t));

	/* Behaviour 7: shared again, it takes stores, on the same PFN. */
	make_shared(_metadata, ctx->env.fd, priv, 0);
	expect_store(_metadata, priv + 0x123, 0x11, "store after MAKE_SHARED");
	EXPECT_EQ(0, thp_pfns_moved(_metadata, &t));
	read_fault_stats(_metadata, ctx->env.fd, &f4);
	EXPECT_EQ(2LL, fdelta(&f0, &f4).sigbus);
	EXPECT_EQ(1LL, fdelta(&f0, &f4).thp_splits);
	EXPECT_EQ(split0 + 1, split_pmd_count(_metadata));
}

/*
 * The other order: the first store of the region goes to the private page.
 * It gets SIGBUS (whether or not it split the PMD), and the region is split
 * exactly once over both stores.
 */
TEST_F(fault, thp_private_store_first)
{
	struct fault_ctx *ctx = &self->ctx;
	const int k = 200;
	struct snp_host_fault_stats f0, f1, f2;
	long long split0, split1;
	struct thp t;
	int ret;

	ret = get_thp(_metadata, ctx, &t);
	if (ret)
		SKIP(return, "%s", thp_why(ret));
	make_private(_metadata, ctx, ctx->env.fd, t.base + k * SZ_4K, 0x100c8000ULL, 0);
	split0 = split_pmd_count(_metadata);
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	expect_sigbus(_metadata, ctx, t.base + k * SZ_4K + 0x40,
		      "first store, to the private page");
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	split1 = split_pmd_count(_metadata);
	EXPECT_EQ(1LL, fdelta(&f0, &f1).sigbus);
	EXPECT_LE(split1, split0 + 1);
	TH_LOG("the SIGBUS store %s the PMD", split1 > split0 ? "split" : "did not split");

	EXPECT_EQ(0, store_pages(t.base, PAGES_PER_2M, k, 0x80, 0x3c));
	read_fault_stats(_metadata, ctx->env.fd, &f2);
	EXPECT_EQ(split0 + 1, split_pmd_count(_metadata));
	EXPECT_EQ(1LL, fdelta(&f0, &f2).thp_splits);
	EXPECT_EQ(1LL, fdelta(&f0, &f2).sigbus);
	EXPECT_GE(2LL, fdelta(&f0, &f2).user_faults)
		TH_LOG("more RMP faults than the SIGBUS and one split");
	EXPECT_EQ(0, thp_pfns_moved(_metadata, &t));
	expect_sigbus(_metadata, ctx, t.base + k * SZ_4K, "private page after the split");
}

/* Behaviour 2 for 4K pages: SIGBUS at the exact address, data unchanged. */
TEST_F(fault, sigbus_4k)
{
	struct fault_ctx *ctx = &self->ctx;
	static const size_t at[] = { SZ_4K, SZ_4K + 0x123, 2 * SZ_4K - 1, 2 * SZ_4K + 0x800 };
	struct snp_host_fault_stats f0, f1, f2;
	char saved[2 * SZ_4K];
	__u64 pfn[4], pfn2[4];
	size_t i;
	char *p;

	p = get_pages(_metadata, ctx, 4);
	ASSERT_EQ(0, pagemap_pfns(p, 4, pfn));
	make_private(_metadata, ctx, ctx->env.fd, p + SZ_4K, 0x20001000ULL, 0);
	make_private(_metadata, ctx, ctx->env.fd, p + 2 * SZ_4K, 0x20002000ULL, 0);
	memcpy(saved, p + SZ_4K, sizeof(saved));
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	for (i = 0; i < ARRAY_SIZE(at); i++)
		expect_sigbus(_metadata, ctx, p + at[i], "private 4K page");
	EXPECT_EQ(0, memcmp(saved, p + SZ_4K, sizeof(saved)));
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_EQ((long long)ARRAY_SIZE(at), fdelta(&f0, &f1).sigbus);
	EXPECT_EQ((long long)ARRAY_SIZE(at), fdelta(&f0, &f1).user_faults);
	EXPECT_EQ(0LL, fdelta(&f0, &f1).thp_splits);
	EXPECT_EQ(0LL, fdelta(&f0, &f1).no_progress);

	/* The shared pages around them are not affected. */
	expect_store(_metadata, p + 0xfff, 0x21, "shared page before");
	expect_store(_metadata, p + 3 * SZ_4K, 0x22, "shared page after");
	read_fault_stats(_metadata, ctx->env.fd, &f2);
	EXPECT_EQ(0LL, fdelta(&f1, &f2).user_faults);

	make_shared(_metadata, ctx->env.fd, p + SZ_4K, 0);
	make_shared(_metadata, ctx->env.fd, p + 2 * SZ_4K, 0);
	expect_store(_metadata, p + SZ_4K + 0x123, 0x23, "after MAKE_SHARED");
	expect_store(_metadata, p + 2 * SZ_4K + 0x800, 0x24, "after MAKE_SHARED");
	ASSERT_EQ(0, pagemap_pfns(p, 4, pfn2));
	EXPECT_EQ(0, memcmp(pfn, pfn2, sizeof(pfn))) TH_LOG("a PFN changed");
}

/*
 * Behaviour 2 for a 2M private page: every page of it faults, the PMD stays
 * (splitting it would not help), and an mprotect() round trip over the
 * whole PMD does not make it writable.
 */
TEST_F(fault, sigbus_2m)
{
	struct fault_ctx *ctx = &self->ctx;
	static const size_t at[] = { 0, SZ_4K + 0x321, 255 * SZ_4K + 0x800, SZ_2M - 1 };
	struct snp_host_fault_stats f0, f1, f2;
	long long split0;
	struct thp t;
	char *saved;
	size_t i;
	int ret;

	ret = get_thp(_metadata, ctx, &t);
	if (ret)
		SKIP(return, "%s", thp_why(ret));
	saved = malloc(SZ_2M);
	ASSERT_NE(NULL, saved);
	make_private(_metadata, ctx, ctx->env.fd, t.base, 0x40000000ULL, SNP_HOST_LEVEL_2M);
	memcpy(saved, t.base, SZ_2M);
	split0 = split_pmd_count(_metadata);
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	EXPECT_EQ(0, load_pages(t.base, PAGES_PER_2M, 0x10));
	for (i = 0; i < ARRAY_SIZE(at); i++)
		expect_sigbus(_metadata, ctx, t.base + at[i], "2M private page");
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_EQ((long long)ARRAY_SIZE(at), fdelta(&f0, &f1).sigbus);
	EXPECT_EQ((long long)ARRAY_SIZE(at), fdelta(&f0, &f1).user_faults);
	EXPECT_EQ(0LL, fdelta(&f0, &f1).thp_splits);
	EXPECT_EQ(split0, split_pmd_count(_metadata));
	EXPECT_TRUE(thp_intact(&t)) TH_LOG("a fault split or moved the 2M page");

	/* mprotect() of the whole PMD down and up again: still refused. */
	ASSERT_EQ(0, mprotect(t.base, SZ_2M, PROT_READ));
	ASSERT_EQ(0, mprotect(t.base, SZ_2M, PROT_READ | PROT_WRITE));
	read_fault_stats(_metadata, ctx->env.fd, &f2);
	EXPECT_LE(1LL, fdelta(&f1, &f2).gup_refused) TH_LOG("the PMD upgrade was not refused");
	expect_sigbus(_metadata, ctx, t.base + 77 * SZ_4K, "2M page after mprotect RW");
	EXPECT_EQ(0, memcmp(saved, t.base, SZ_2M));
	EXPECT_TRUE(thp_intact(&t));

	make_shared(_metadata, ctx->env.fd, t.base, SNP_HOST_LEVEL_2M);
	for (i = 0; i < ARRAY_SIZE(at); i++)
		expect_store(_metadata, t.base + at[i], 0x31, "2M page after MAKE_SHARED");
	EXPECT_EQ(0, thp_pfns_moved(_metadata, &t));
	free(saved);
}

/*
 * Two 4K pages of one THP made private one after the other: the second
 * conversion (which pins through the write-protected PMD) must not make the
 * first page writable again; the region is split once in all.
 */
TEST_F(fault, thp_second_private)
{
	struct fault_ctx *ctx = &self->ctx;
	const int k1 = 3, k2 = 300;
	long long split0;
	struct thp t;
	int i, faulted = 0, ret;

	ret = get_thp(_metadata, ctx, &t);
	if (ret)
		SKIP(return, "%s", thp_why(ret));
	split0 = split_pmd_count(_metadata);
	make_private(_metadata, ctx, ctx->env.fd, t.base + k1 * SZ_4K, 0x30003000ULL, 0);
	make_private(_metadata, ctx, ctx->env.fd, t.base + k2 * SZ_4K, 0x3012c000ULL, 0);
	/* Behaviour 1 holds for the second page too: no split at conversion. */
	EXPECT_EQ(split0, split_pmd_count(_metadata))
		TH_LOG("the second MAKE_PRIVATE split the THP");
	EXPECT_TRUE(thp_intact(&t)) TH_LOG("the second MAKE_PRIVATE split or moved the THP");
	expect_sigbus(_metadata, ctx, t.base + k1 * SZ_4K + 1, "first private page");
	expect_sigbus(_metadata, ctx, t.base + k2 * SZ_4K + 2, "second private page");

	for (i = 0; i < PAGES_PER_2M; i++)
		if (i != k1 && i != k2)
			faulted += !!store_byte(t.base + i * SZ_4K + 3, 0x41);
	EXPECT_EQ(0, faulted) TH_LOG("stores to shared neighbours faulted");
	expect_sigbus(_metadata, ctx, t.base + k1 * SZ_4K + 4, "first private page after");
	expect_sigbus(_metadata, ctx, t.base + k2 * SZ_4K + 5, "second private page after");
	EXPECT_EQ(split0 + 1, split_pmd_count(_metadata));
	EXPECT_EQ(0, thp_pfns_moved(_metadata, &t));
}

/*
 * One 2M hugetlbfs page (MAP_HUGETLB), reserved for the test through
 * /proc/sys/vm/nr_hugepages when none is free (put back by the teardown).
 * Each 4K page starts with its index + 1.  NULL with *@why set when the
 * kernel has none to give.
 */
static char *get_hugetlb(struct __test_metadata *_metadata,
			 struct fault_ctx *ctx, const char **why)
{
	long long nr, avail;
	size_t i;
	char *h;

	if (meminfo_read("Hugepagesize") != 2048) {
		*why = "the default huge page size is not 2M";
		return NULL;
	}
	nr = read_ll(NR_HUGEPAGES);
	avail = meminfo_read("HugePages_Free");
	if (nr < 0 || avail < 0) {
		*why = "no hugetlbfs on this kernel";
		return NULL;
	}
	if (avail < 1) {
		if (write_ll(NR_HUGEPAGES, nr + 1)) {
			*why = "cannot write " NR_HUGEPAGES;
			return NULL;
		}
		ctx->huge_nr = nr;
	}
	h = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT),
		 -1, 0);
	if (h == MAP_FAILED) {
		*why = "no 2M hugetlbfs page could be reserved";
		return NULL;
	}
	add_map(_metadata, ctx, h, SZ_2M);
	for (i = 0; i < PAGES_PER_2M; i++)
		h[i * SZ_4K] = (char)(i + 1);
	EXPECT_TRUE(kpf_has(pagemap_pfn(h), KPF_HUGE)) TH_LOG("not a hugetlb page");
	return h;
}

/* Offsets in a 2M page: the first byte, a second page, the middle, the last byte. */
static const size_t huge_at[] = { 0, SZ_4K + 0x234, 256 * SZ_4K + 5, SZ_2M - 1 };

/* Every store of huge_at[] to @h faults, nothing splits, no PFN moves. */
static void expect_huge_sigbus(struct __test_metadata *_metadata,
			       struct fault_ctx *ctx, char *h, const __u64 *pfns,
			       const char *what)
{
	struct snp_host_fault_stats f0, f1;
	__u64 now[PAGES_PER_2M];
	long long split0;
	size_t i;

	split0 = split_pmd_count(_metadata);
	read_fault_stats(_metadata, ctx->env.fd, &f0);
	EXPECT_EQ(0, load_pages(h, PAGES_PER_2M, 0));
	for (i = 0; i < ARRAY_SIZE(huge_at); i++)
		expect_sigbus(_metadata, ctx, h + huge_at[i], what);
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_EQ((long long)ARRAY_SIZE(huge_at), fdelta(&f0, &f1).sigbus) TH_LOG("%s", what);
	EXPECT_EQ(0LL, fdelta(&f0, &f1).thp_splits) TH_LOG("%s", what);
	EXPECT_EQ(split0, split_pmd_count(_metadata));
	ASSERT_EQ(0, pagemap_pfns(h, PAGES_PER_2M, now));
	EXPECT_EQ(0, memcmp(pfns, now, sizeof(now))) TH_LOG("%s: a PFN moved", what);
}

static void expect_huge_stores(struct __test_metadata *_metadata, char *h,
			       const __u64 *pfns, const char *what)
{
	__u64 now[PAGES_PER_2M];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(huge_at); i++)
		expect_store(_metadata, h + huge_at[i], 0x51, what);
	ASSERT_EQ(0, pagemap_pfns(h, PAGES_PER_2M, now));
	EXPECT_EQ(0, memcmp(pfns, now, sizeof(now))) TH_LOG("%s: a PFN moved", what);
}

/* Behaviour 3: a hugetlbfs page private at 2M cannot be written anywhere. */
TEST_F(fault, hugetlb_2m)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_stats s0, s1, s2;
	__u64 pfns[PAGES_PER_2M];
	const char *why = NULL;
	char *h;

	h = get_hugetlb(_metadata, ctx, &why);
	if (!h)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, pagemap_pfns(h, PAGES_PER_2M, pfns));
	read_stats(_metadata, ctx->env.fd, &s0);
	make_private(_metadata, ctx, ctx->env.fd, h, 0x80000000ULL, SNP_HOST_LEVEL_2M);
	read_stats(_metadata, ctx->env.fd, &s1);
	expect_delta(_metadata, &s0, &s1, 0, 1, 1, 0, 0);
	expect_huge_sigbus(_metadata, ctx, h, pfns, "hugetlb page private at 2M");
	make_shared(_metadata, ctx->env.fd, h, SNP_HOST_LEVEL_2M);
	read_stats(_metadata, ctx->env.fd, &s2);
	expect_delta(_metadata, &s1, &s2, 0, -1, 0, 1, 0);
	expect_huge_stores(_metadata, h, pfns, "hugetlb page after MAKE_SHARED");
}

/*
 * Behaviour 3: a 4K page of a hugetlbfs page private; the mapping cannot be
 * split, so a store anywhere in the 2M gets SIGBUS.
 */
TEST_F(fault, hugetlb_4k_inside)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_stats s0, s1;
	__u64 pfns[PAGES_PER_2M];
	const char *why = NULL;
	char *h;

	h = get_hugetlb(_metadata, ctx, &why);
	if (!h)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, pagemap_pfns(h, PAGES_PER_2M, pfns));
	read_stats(_metadata, ctx->env.fd, &s0);
	make_private(_metadata, ctx, ctx->env.fd, h + 7 * SZ_4K, 0x80007000ULL, 0);
	read_stats(_metadata, ctx->env.fd, &s1);
	expect_delta(_metadata, &s0, &s1, 1, 0, 1, 0, 0);
	expect_sigbus(_metadata, ctx, h + 7 * SZ_4K + 9, "the private 4K page itself");
	expect_huge_sigbus(_metadata, ctx, h, pfns, "hugetlb page with a private 4K page");
	/* A second 4K page of the same hugetlbfs page (its mapping is read-only now). */
	make_private(_metadata, ctx, ctx->env.fd, h + 100 * SZ_4K, 0x80064000ULL, 0);
	expect_sigbus(_metadata, ctx, h + 100 * SZ_4K + 9, "the second private 4K page");
	make_shared(_metadata, ctx->env.fd, h + 100 * SZ_4K, 0);
	expect_huge_sigbus(_metadata, ctx, h, pfns, "hugetlb page with one private 4K page left");
	make_shared(_metadata, ctx->env.fd, h + 7 * SZ_4K, 0);
	expect_huge_stores(_metadata, h, pfns, "hugetlb page after MAKE_SHARED");
	expect_store(_metadata, h + 7 * SZ_4K + 9, 0x52, "the 4K page after MAKE_SHARED");
}

/* Behaviour 3: file mappings other than hugetlbfs stay EINVAL. */
TEST_F(fault, file_mappings_einval)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_page pg;
	void *probe[1];
	char *m;
	int mfd;

	mfd = keep_fd(_metadata, ctx, memfd_create("fault_test", MFD_CLOEXEC));
	ASSERT_EQ(0, ftruncate(mfd, SZ_4K));
	m = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	ASSERT_NE(MAP_FAILED, m);
	add_map(_metadata, ctx, m, SZ_4K);
	m[0] = 1;
	probe[0] = m;
	pg = snp_page(m, 0x9000, ASID, 0);
	expect_refused(_metadata, &ctx->env, ctx->env.fd, SNP_HOST_MAKE_PRIVATE, &pg,
		       EINVAL, 0, probe, 1, "private memfd mapping");

	m = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, m);
	add_map(_metadata, ctx, m, SZ_4K);
	m[0] = 2;
	probe[0] = m;
	pg = snp_page(m, 0x9000, ASID, 0);
	expect_refused(_metadata, &ctx->env, ctx->env.fd, SNP_HOST_MAKE_PRIVATE, &pg,
		       EINVAL, 0, probe, 1, "shared memfd mapping");

	m = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m);
	add_map(_metadata, ctx, m, SZ_4K);
	m[0] = 3;
	probe[0] = m;
	pg = snp_page(m, 0x9000, ASID, 0);
	expect_refused(_metadata, &ctx->env, ctx->env.fd, SNP_HOST_MAKE_PRIVATE, &pg,
		       EINVAL, 0, probe, 1, "shared anonymous (shmem) mapping");
	expect_store(_metadata, m, 4, "the refused shmem page");
}

/*
 * Some kernel-log record after sequence number @seq0 names the page of
 * @addr: its address in hex, to the page (whether the record prints the
 * exact address or the page's).
 */
static int kmsg_names_page(long long seq0, const void *addr, char *rec, size_t size)
{
	char needle[32];

	snprintf(needle, sizeof(needle), "%lx", (unsigned long)addr >> 12);
	return kmsg_scan(seq0, needle, rec, size, NULL);
}

/*
 * Behaviour 4: a fault that repeats without progress ends in SIGBUS.  The
 * module's debugfs force_retry (1: every decision is RETRY, a racing or
 * buggy provider) is the only way to make one from user space.
 */
TEST_F(fault, no_progress)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_fault_stats f0, f1, f2;
	char rec[KMSG_REC];
	long long seq0;
	int found;
	char *p;

	if (!ctx->env.debugfs)
		SKIP(return, "no debugfs snp_host directory");
	if (access(SNP_DEBUGFS_FORCE_RETRY, W_OK))
		SKIP(return, "no debugfs %s: nothing makes a fault repeat without progress",
		     "force_retry");
	p = get_pages(_metadata, ctx, 2);
	make_private(_metadata, ctx, ctx->env.fd, p, 0x50000000ULL, 0);
	seq0 = kmsg_last_seq();
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	alarm(ALARM_S);
	ctx->force_retry = true;
	ASSERT_EQ(0, write_str(SNP_DEBUGFS_FORCE_RETRY, "1\n"));
	expect_sigbus(_metadata, ctx, p, "store while every decision is RETRY");
	ASSERT_EQ(0, write_str(SNP_DEBUGFS_FORCE_RETRY, "0\n"));
	ctx->force_retry = false;
	alarm(0);
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_EQ(1LL, fdelta(&f0, &f1).no_progress);
	EXPECT_EQ(1LL, fdelta(&f0, &f1).sigbus);
	EXPECT_LE(2LL, fdelta(&f0, &f1).user_faults) TH_LOG("the fault never repeated");
	EXPECT_GE(64LL, fdelta(&f0, &f1).user_faults) TH_LOG("no small bound");
	found = kmsg_names_page(seq0, p, rec, sizeof(rec));
	EXPECT_EQ(1, found) TH_LOG("no kernel-log line names the address %p", p);
	if (found == 1)
		TH_LOG("log: %s", rec);

	/* Back to normal decisions: a plain SIGBUS, not counted as no progress. */
	expect_sigbus(_metadata, ctx, p + 8, "store after force_retry=0");
	read_fault_stats(_metadata, ctx->env.fd, &f2);
	EXPECT_EQ(0LL, fdelta(&f1, &f2).no_progress);
	EXPECT_EQ(1LL, fdelta(&f1, &f2).sigbus);
}

/*
 * Behaviour 5, uaccess: the kernel writing into a private page through our
 * mapping (read(2) from /dev/zero and from a pipe) fails with EFAULT and
 * leaves the page alone; into a neighbour it works; the kernel reading the
 * private page (write(2) from it) works.
 */
TEST_F(fault, uaccess_read_write)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_fault_stats f0, f1, f2;
	char saved[SZ_4K], buf[SZ_4K], *p, *priv;
	int zfd, pfd[2];

	alarm(ALARM_S);
	p = get_pages(_metadata, ctx, 3);
	priv = p + SZ_4K;
	make_private(_metadata, ctx, ctx->env.fd, priv, 0x60001000ULL, 0);
	memcpy(saved, priv, SZ_4K);
	zfd = keep_fd(_metadata, ctx, open("/dev/zero", O_RDONLY | O_CLOEXEC));
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	errno = 0;
	EXPECT_EQ(-1, read(zfd, priv, SZ_4K));
	EXPECT_EQ(EFAULT, errno) TH_LOG("read(/dev/zero) into the private page: %s",
					strerror(errno));
	EXPECT_EQ((ssize_t)SZ_4K, read(zfd, p, SZ_4K));
	EXPECT_EQ(0, p[0] | p[SZ_4K - 1]);
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_LE(1LL, fdelta(&f0, &f1).uaccess_refused);

	/* A pipe keeps what it could not deliver (non-blocking: never waits). */
	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC | O_NONBLOCK));
	keep_fd(_metadata, ctx, pfd[0]);
	keep_fd(_metadata, ctx, pfd[1]);
	memset(buf, 0x77, sizeof(buf));
	ASSERT_EQ((ssize_t)SZ_4K, write(pfd[1], buf, SZ_4K));
	errno = 0;
	EXPECT_EQ(-1, read(pfd[0], priv, SZ_4K));
	EXPECT_EQ(EFAULT, errno) TH_LOG("read(pipe) into the private page: %s",
					strerror(errno));
	EXPECT_EQ((ssize_t)SZ_4K, read(pfd[0], p + 2 * SZ_4K, SZ_4K));
	EXPECT_EQ(0, memcmp(buf, p + 2 * SZ_4K, SZ_4K));
	read_fault_stats(_metadata, ctx->env.fd, &f2);
	EXPECT_LE(1LL, fdelta(&f1, &f2).uaccess_refused);

	/* The kernel may read the private page. */
	EXPECT_EQ((ssize_t)SZ_4K, write(pfd[1], priv, SZ_4K));
	EXPECT_EQ((ssize_t)SZ_4K, read(pfd[0], buf, SZ_4K));
	EXPECT_EQ(0, memcmp(saved, buf, SZ_4K));

	EXPECT_EQ(0, memcmp(saved, priv, SZ_4K));
	EXPECT_EQ(0LL, fdelta(&f0, &f2).sigbus) TH_LOG("a kernel access sent SIGBUS");
	alarm(0);
}

/* Behaviour 5 with a THP: the kernel's store to a neighbour splits and succeeds. */
TEST_F(fault, uaccess_thp_neighbour)
{
	struct fault_ctx *ctx = &self->ctx;
	const int k = 9;
	struct snp_host_fault_stats f0, f1;
	char saved[SZ_4K];
	long long split0;
	struct thp t;
	int zfd, ret;

	ret = get_thp(_metadata, ctx, &t);
	if (ret)
		SKIP(return, "%s", thp_why(ret));
	alarm(ALARM_S);
	make_private(_metadata, ctx, ctx->env.fd, t.base + k * SZ_4K, 0x6000a000ULL, 0);
	memcpy(saved, t.base + k * SZ_4K, SZ_4K);
	zfd = keep_fd(_metadata, ctx, open("/dev/zero", O_RDONLY | O_CLOEXEC));
	split0 = split_pmd_count(_metadata);
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	EXPECT_EQ((ssize_t)SZ_4K, read(zfd, t.base + (k + 1) * SZ_4K, SZ_4K));
	EXPECT_EQ(0, t.base[(k + 1) * SZ_4K]);
	EXPECT_EQ(split0 + 1, split_pmd_count(_metadata));
	errno = 0;
	EXPECT_EQ(-1, read(zfd, t.base + k * SZ_4K, SZ_4K));
	EXPECT_EQ(EFAULT, errno);
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_EQ(1LL, fdelta(&f0, &f1).thp_splits);
	EXPECT_LE(1LL, fdelta(&f0, &f1).uaccess_refused);
	EXPECT_EQ(0LL, fdelta(&f0, &f1).sigbus);
	EXPECT_EQ(0, memcmp(saved, t.base + k * SZ_4K, SZ_4K));
	EXPECT_EQ(0, thp_pfns_moved(_metadata, &t));
	alarm(0);
}

static long futex(int *uaddr, int op, int val, unsigned long val2, int *uaddr2, int val3)
{
	return syscall(SYS_futex, uaddr, op, val, val2, uaddr2, val3);
}

/*
 * Behaviour 5, futex: FUTEX_WAKE_OP's atomic update of a private page fails
 * with EFAULT (on 7.3 it retries forever); FUTEX_WAIT, which only reads,
 * still sees the value.
 */
TEST_F(fault, futex_wake_op)
{
	struct fault_ctx *ctx = &self->ctx;
	const int op = FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0);
	struct timespec limit = { .tv_sec = 1 };
	struct snp_host_fault_stats f0, f1;
	int *word, *shared2, *priv, old;
	char *p;

	alarm(ALARM_S);
	p = get_pages(_metadata, ctx, 2);
	word = (int *)(p + 64);
	shared2 = (int *)(p + 128);
	priv = (int *)(p + SZ_4K + 64);
	*word = 0;
	*shared2 = 0;
	make_private(_metadata, ctx, ctx->env.fd, p + SZ_4K, 0x70001000ULL, 0);
	old = *priv;
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	EXPECT_EQ(0L, futex(word, FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG, 1, 1, shared2, op));
	EXPECT_EQ(1, *shared2) TH_LOG("control: WAKE_OP did not update a shared word");
	errno = 0;
	EXPECT_EQ(-1L, futex(word, FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG, 1, 1, priv, op));
	EXPECT_EQ(EFAULT, errno) TH_LOG("FUTEX_WAKE_OP on the private page: %s",
					strerror(errno));
	EXPECT_EQ(old, *priv);
	/* A value other than the word's: EAGAIN at once, if the kernel can read it. */
	errno = 0;
	EXPECT_EQ(-1L, futex(priv, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, *priv + 1,
			     (unsigned long)&limit, NULL, 0));
	EXPECT_EQ(EAGAIN, errno) TH_LOG("FUTEX_WAIT on the private page: %s", strerror(errno));
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_LE(1LL, fdelta(&f0, &f1).uaccess_refused + fdelta(&f0, &f1).gup_refused);
	EXPECT_EQ(0LL, fdelta(&f0, &f1).sigbus);
	alarm(0);
}

/* EIO is what /proc/PID/mem and ptrace make of a GUP that faulted; EFAULT is allowed too. */
static bool gup_errno(int e)
{
	return e == EIO || e == EFAULT;
}

/*
 * Behaviour 5, /proc/self/mem (GUP with FOLL_FORCE): a write to the private
 * page fails, also through a read-only mapping (where FOLL_FORCE would
 * write without a VM_WRITE fault), a write to a neighbour and a read of the
 * private page work.  The page stays the same PFN, unchanged.
 */
TEST_F(fault, proc_self_mem)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_fault_stats f0, f1, f2;
	char saved[SZ_4K], buf[8], got[8], *p, *priv;
	off_t off;
	__u64 pfn;
	int mfd;

	alarm(ALARM_S);
	p = get_pages(_metadata, ctx, 3);
	priv = p + SZ_4K;
	make_private(_metadata, ctx, ctx->env.fd, priv, 0x71001000ULL, 0);
	memcpy(saved, priv, SZ_4K);
	pfn = pagemap_pfn(priv);
	mfd = keep_fd(_metadata, ctx, open("/proc/self/mem", O_RDWR | O_CLOEXEC));
	memset(buf, 0xa5, sizeof(buf));
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	errno = 0;
	EXPECT_EQ(-1, pwrite(mfd, buf, sizeof(buf), (off_t)(unsigned long)(priv + 16)));
	EXPECT_TRUE(gup_errno(errno)) TH_LOG("pwrite to the private page: %s", strerror(errno));
	EXPECT_EQ((ssize_t)sizeof(buf), pwrite(mfd, buf, sizeof(buf), (off_t)(unsigned long)p));
	EXPECT_EQ(0, memcmp(buf, p, sizeof(buf)));
	off = (off_t)(unsigned long)(priv + 16);
	EXPECT_EQ((ssize_t)sizeof(got), pread(mfd, got, sizeof(got), off));
	EXPECT_EQ(0, memcmp(saved + 16, got, sizeof(got)));
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_LE(1LL, fdelta(&f0, &f1).gup_refused);

	ASSERT_EQ(0, mprotect(priv, SZ_4K, PROT_READ));
	errno = 0;
	EXPECT_EQ(-1, pwrite(mfd, buf, sizeof(buf), (off_t)(unsigned long)(priv + 16)));
	EXPECT_TRUE(gup_errno(errno)) TH_LOG("FOLL_FORCE pwrite through PROT_READ: %s",
					     strerror(errno));
	ASSERT_EQ(0, mprotect(priv, SZ_4K, PROT_READ | PROT_WRITE));
	read_fault_stats(_metadata, ctx->env.fd, &f2);
	EXPECT_LE(1LL, fdelta(&f1, &f2).gup_refused);

	EXPECT_EQ(pfn, pagemap_pfn(priv)) TH_LOG("FOLL_FORCE replaced the private page");
	EXPECT_EQ(0, memcmp(saved, priv, SZ_4K));
	expect_sigbus(_metadata, ctx, priv + 16, "private page after /proc/self/mem");
	alarm(0);
}

/* Shared between ptrace_poke and its child. */
struct poke_report {
	int ret;
	__u64 pfn;
	int unchanged;
	int neighbour;
	char why[128];
};

#define POKE_OLD	0x11
#define POKE_NEW	0x4242424242424242UL

/* The child of ptrace_poke: one private page at @p, then wait to be poked. */
static int poke_child(char *p, struct poke_report *rep, int ready, int go)
{
	char c = 0;
	int fd, ret;

	p[0] = POKE_OLD;	/* a copy of our own, not the parent's */
	p[SZ_4K] = 0;
	fd = snp_open();
	if (fd < 0) {
		snprintf(rep->why, sizeof(rep->why), "open: %s", strerror(-fd));
		return 1;
	}
	ret = snp_make_private(fd, p, 0x72000000ULL, ASID, 0);
	if (ret) {
		snprintf(rep->why, sizeof(rep->why), "MAKE_PRIVATE: %s", strerror(-ret));
		return 1;
	}
	rep->pfn = pagemap_pfn(p);
	if (write(ready, &c, 1) != 1)
		return 1;
	while (read(go, &c, 1) < 0 && errno == EINTR)
		;
	rep->unchanged = p[0] == POKE_OLD;
	rep->neighbour = *(unsigned long *)(p + SZ_4K) == POKE_NEW;
	ret = snp_make_shared(fd, p, 0);
	if (ret)
		snprintf(rep->why, sizeof(rep->why), "MAKE_SHARED: %s", strerror(-ret));
	close(fd);
	return ret ? 1 : 0;
}

/* Behaviour 5, ptrace POKEDATA to a tracee's private page: EIO; PEEKDATA works. */
TEST_F(fault, ptrace_poke)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_fault_stats f0, f1;
	int ready[2], go[2], status;
	struct poke_report *rep;
	char c = 0, *p;
	long word;
	pid_t pid;

	alarm(ALARM_S);
	p = get_pages(_metadata, ctx, 2);
	rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, rep);
	add_map(_metadata, ctx, rep, sizeof(*rep));
	ASSERT_EQ(0, pipe2(ready, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(go, O_CLOEXEC));
	keep_fd(_metadata, ctx, ready[0]);
	keep_fd(_metadata, ctx, ready[1]);
	keep_fd(_metadata, ctx, go[0]);
	keep_fd(_metadata, ctx, go[1]);
	read_fault_stats(_metadata, ctx->env.fd, &f0);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		close(ctx->env.fd);
		_exit(poke_child(p, rep, ready[1], go[0]));
	}
	ctx->child = pid;
	ASSERT_EQ(1, read(ready[0], &c, 1)) TH_LOG("child: %s", rep->why);

	ASSERT_EQ(0, ptrace(PTRACE_SEIZE, pid, 0, 0)) TH_LOG("PTRACE_SEIZE: %s", strerror(errno));
	ASSERT_EQ(0, ptrace(PTRACE_INTERRUPT, pid, 0, 0));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSTOPPED(status));
	errno = 0;
	word = ptrace(PTRACE_PEEKDATA, pid, p, 0);
	EXPECT_EQ(0, errno) TH_LOG("PEEKDATA of the private page: %s", strerror(errno));
	EXPECT_EQ(POKE_OLD, (int)(word & 0xff));
	errno = 0;
	EXPECT_EQ(-1L, ptrace(PTRACE_POKEDATA, pid, p, POKE_NEW));
	EXPECT_TRUE(gup_errno(errno)) TH_LOG("POKEDATA to the private page: %s",
					     strerror(errno));
	EXPECT_EQ(0L, ptrace(PTRACE_POKEDATA, pid, p + SZ_4K, POKE_NEW));
	EXPECT_EQ(0L, ptrace(PTRACE_DETACH, pid, 0, 0));
	ASSERT_EQ(1, write(go[1], &c, 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ctx->child = 0;
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status)) TH_LOG("child: %s", rep->why);
	EXPECT_TRUE(rep->unchanged) TH_LOG("POKEDATA changed the private page");
	EXPECT_TRUE(rep->neighbour) TH_LOG("POKEDATA to the neighbour did not land");
	EXPECT_NE(0ULL, rep->pfn);
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_LE(1LL, fdelta(&f0, &f1).gup_refused);
	alarm(0);
}

/* Behaviour 5, process_vm_writev() to our own private page: EFAULT. */
TEST_F(fault, process_vm_writev)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_fault_stats f0, f1;
	char saved[SZ_4K], buf[16], *p, *priv;
	struct iovec local, remote;

	alarm(ALARM_S);
	p = get_pages(_metadata, ctx, 2);
	priv = p + SZ_4K;
	local = (struct iovec){ .iov_base = buf, .iov_len = sizeof(buf) };
	remote = (struct iovec){ .iov_base = p, .iov_len = sizeof(buf) };
	/* The control: reading a shared page fails only without the syscalls. */
	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) < 0)
		SKIP(return, "process_vm_readv(): %s (CONFIG_CROSS_MEMORY_ATTACH=n?)",
		     strerror(errno));
	make_private(_metadata, ctx, ctx->env.fd, priv, 0x73001000ULL, 0);
	memcpy(saved, priv, SZ_4K);
	memset(buf, 0x66, sizeof(buf));
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	remote.iov_base = priv;
	errno = 0;
	EXPECT_EQ(-1, process_vm_writev(getpid(), &local, 1, &remote, 1, 0));
	EXPECT_EQ(EFAULT, errno) TH_LOG("process_vm_writev to the private page: %s",
					strerror(errno));
	EXPECT_EQ((ssize_t)sizeof(buf), process_vm_readv(getpid(), &local, 1, &remote, 1, 0));
	EXPECT_EQ(0, memcmp(saved, buf, sizeof(buf)));
	remote.iov_base = p;
	EXPECT_EQ((ssize_t)sizeof(buf), process_vm_writev(getpid(), &local, 1, &remote, 1, 0));
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_LE(1LL, fdelta(&f0, &f1).gup_refused);
	EXPECT_EQ(0, memcmp(saved, priv, SZ_4K));
	alarm(0);
}

/* Behaviour 5, MADV_POPULATE_WRITE over a private page: EFAULT. */
TEST_F(fault, populate_write)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_fault_stats f0, f1;
	char saved[SZ_4K], *p, *priv;

	alarm(ALARM_S);
	p = get_pages(_metadata, ctx, 3);
	priv = p + SZ_4K;
	make_private(_metadata, ctx, ctx->env.fd, priv, 0x74001000ULL, 0);
	memcpy(saved, priv, SZ_4K);
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	errno = 0;
	EXPECT_EQ(-1, madvise(p, 3 * SZ_4K, MADV_POPULATE_WRITE));
	EXPECT_EQ(EFAULT, errno) TH_LOG("MADV_POPULATE_WRITE over the private page: %s",
					strerror(errno));
	EXPECT_EQ(0, madvise(p, SZ_4K, MADV_POPULATE_WRITE));
	EXPECT_EQ(0, madvise(p + 2 * SZ_4K, SZ_4K, MADV_POPULATE_WRITE));
	EXPECT_EQ(0, madvise(priv, SZ_4K, MADV_POPULATE_READ));
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_LE(1LL, fdelta(&f0, &f1).gup_refused);
	EXPECT_EQ(0, memcmp(saved, priv, SZ_4K));
	expect_sigbus(_metadata, ctx, priv, "private page after MADV_POPULATE_WRITE");
	alarm(0);
}

/* Behaviour 5, mprotect(PROT_READ) then (PROT_READ | PROT_WRITE): still SIGBUS. */
TEST_F(fault, mprotect_upgrade)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_fault_stats f0, f1;
	char *p, *priv;
	__u64 pfn;

	p = get_pages(_metadata, ctx, 3);
	priv = p + SZ_4K;
	make_private(_metadata, ctx, ctx->env.fd, priv, 0x75001000ULL, 0);
	pfn = pagemap_pfn(priv);
	read_fault_stats(_metadata, ctx->env.fd, &f0);
	ASSERT_EQ(0, mprotect(p, 3 * SZ_4K, PROT_READ));
	ASSERT_EQ(0, mprotect(p, 3 * SZ_4K, PROT_READ | PROT_WRITE));
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_LE(1LL, fdelta(&f0, &f1).gup_refused) TH_LOG("the upgrade was not refused");
	expect_sigbus(_metadata, ctx, priv + 0x10, "private page after mprotect RW");
	expect_store(_metadata, p, 0x61, "neighbour after mprotect RW");
	expect_store(_metadata, p + 2 * SZ_4K, 0x62, "neighbour after mprotect RW");
	EXPECT_EQ(pfn, pagemap_pfn(priv));
}

/* Writes @pfn to debugfs kwrite, in hex or decimal; 0 or a negative errno. */
static int kwrite(__u64 pfn, bool hex)
{
	char buf[32];

	snprintf(buf, sizeof(buf), hex ? "0x%llx\n" : "%llu\n", (unsigned long long)pfn);
	return write_str(SNP_DEBUGFS_KWRITE, buf);
}

/*
 * Behaviour 6: a kernel write to a private page through the direct map
 * (copy_to_kernel_nofault() from debugfs kwrite) fails with EFAULT, is
 * reported in the kernel log with the PFN, and changes nothing; kwrite
 * refuses a PFN the module does not hold private with EINVAL.
 */
TEST_F(fault, kwrite)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_fault_stats f0, f1, f2;
	char saved[SZ_4K], needle[32], rec[KMSG_REC], *p;
	__u64 pfn, shared_pfn;
	long long seq0;
	int found;

	if (!ctx->env.debugfs)
		SKIP(return, "no debugfs snp_host directory");
	if (ctx->status.backend == SNP_HOST_BACKEND_EMULATED &&
	    ctx->status.directmap_policy == SNP_HOST_DIRECTMAP_SPLIT)
		SKIP(return, "directmap=split keeps the direct map of guest pages %s",
		     "writable: nothing faults");
	ASSERT_EQ(0, access(SNP_DEBUGFS_KWRITE, W_OK)) TH_LOG("no %s", SNP_DEBUGFS_KWRITE);
	p = get_pages(_metadata, ctx, 2);
	make_private(_metadata, ctx, ctx->env.fd, p, 0x76000000ULL, 0);
	memcpy(saved, p, SZ_4K);
	pfn = pagemap_pfn(p);
	shared_pfn = pagemap_pfn(p + SZ_4K);
	ASSERT_NE(0ULL, pfn);
	ASSERT_NE(0ULL, shared_pfn);
	seq0 = kmsg_last_seq();
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	EXPECT_EQ(-EFAULT, kwrite(pfn, true));
	EXPECT_EQ(-EFAULT, kwrite(pfn, false));
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_EQ(2LL, fdelta(&f0, &f1).kernel_faults);
	EXPECT_EQ(0, memcmp(saved, p, SZ_4K)) TH_LOG("the kernel write went through");
	EXPECT_EQ(pfn, pagemap_pfn(p));

	snprintf(needle, sizeof(needle), "%llx", (unsigned long long)pfn);
	found = kmsg_scan(seq0, needle, rec, sizeof(rec), NULL);
	EXPECT_EQ(1, found) TH_LOG("no kernel-log record names PFN 0x%s", needle);
	if (found == 1)
		TH_LOG("log: %s", rec);
	EXPECT_EQ(1, kmsg_scan(seq0, "RMP", NULL, 0, NULL)) TH_LOG("no RMP report in the log");
	EXPECT_EQ(0, kmsg_scan(seq0, "Oops", NULL, 0, NULL));
	EXPECT_EQ(0, kmsg_scan(seq0, "BUG:", NULL, 0, NULL));

	EXPECT_EQ(-EINVAL, kwrite(shared_pfn, true)) TH_LOG("a shared PFN");
	EXPECT_EQ(-EINVAL, kwrite(ctx->status.max_pfn + 1, true)) TH_LOG("beyond the RMP");
	EXPECT_EQ(-EINVAL, write_str(SNP_DEBUGFS_KWRITE, "pfn\n"));
	EXPECT_EQ(-EINVAL, write_str(SNP_DEBUGFS_KWRITE, "\n"));
	read_fault_stats(_metadata, ctx->env.fd, &f2);
	EXPECT_EQ(0LL, fdelta(&f1, &f2).kernel_faults);
}

/* The last line of debugfs faults naming @addr's page and @pfn, into @line. */
static bool faults_line(const char *text, const void *addr, __u64 pfn, char *line,
			size_t size)
{
	char a[32], f[32], cur[512];
	bool found = false;
	const char *s, *e;
	size_t len;

	snprintf(a, sizeof(a), "%lx", (unsigned long)addr >> 12);
	snprintf(f, sizeof(f), "%llx", (unsigned long long)pfn);
	line[0] = '\0';
	for (s = text; *s; s = *e ? e + 1 : e) {
		e = strchrnul(s, '\n');
		len = (size_t)(e - s) < sizeof(cur) - 1 ? (size_t)(e - s) : sizeof(cur) - 1;
		memcpy(cur, s, len);
		cur[len] = '\0';
		if (strcasestr(cur, a) && strcasestr(cur, f)) {
			snprintf(line, size, "%s", cur);
			found = true;
		}
	}
	return found;
}

/* Whether @line holds @n as a number of its own. */
static bool has_number(const char *line, long n)
{
	char num[24];
	const char *s;
	size_t len;

	len = snprintf(num, sizeof(num), "%ld", n);
	for (s = strstr(line, num); s; s = strstr(s + 1, num))
		if ((s == line || !isdigit((unsigned char)s[-1])) &&
		    !isdigit((unsigned char)s[len]))
			return true;
	return false;
}

/*
 * debugfs faults lists the last decisions with pid, comm, address, PFN and
 * the decision: a SIGBUS, and (given a THP) a split.
 */
TEST_F(fault, faults_log)
{
	struct fault_ctx *ctx = &self->ctx;
	char line[512], *text, *p;
	__u64 pfn;
	struct thp t;

	if (!ctx->env.debugfs)
		SKIP(return, "no debugfs snp_host directory");
	ASSERT_EQ(0, access(SNP_DEBUGFS_FAULTS, R_OK)) TH_LOG("no %s", SNP_DEBUGFS_FAULTS);
	p = get_pages(_metadata, ctx, 1);
	make_private(_metadata, ctx, ctx->env.fd, p, 0x77000000ULL, 0);
	pfn = pagemap_pfn(p);
	expect_sigbus(_metadata, ctx, p + 0x40, "private page");
	text = read_text(SNP_DEBUGFS_FAULTS);
	ASSERT_NE(NULL, text);
	EXPECT_TRUE(faults_line(text, p, pfn, line, sizeof(line)))
		TH_LOG("no line for %p (PFN 0x%llx):\n%s", p, pfn, text);
	EXPECT_TRUE(has_number(line, getpid())) TH_LOG("no pid %d in: %s", getpid(), line);
	EXPECT_NE(NULL, strstr(line, "fault_test")) TH_LOG("no comm in: %s", line);
	EXPECT_NE(NULL, strcasestr(line, "sigbus")) TH_LOG("no SIGBUS decision in: %s", line);
	free(text);

	if (get_thp(_metadata, ctx, &t)) {
		TH_LOG("no THP: the split decision is not checked");
		return;
	}
	make_private(_metadata, ctx, ctx->env.fd, t.base, 0x77200000ULL, 0);
	expect_store(_metadata, t.base + SZ_4K, 0x71, "neighbour in the THP");
	text = read_text(SNP_DEBUGFS_FAULTS);
	ASSERT_NE(NULL, text);
	EXPECT_TRUE(faults_line(text, t.base + SZ_4K, t.pfn + 1, line, sizeof(line)))
		TH_LOG("no line for %p (PFN 0x%llx):\n%s", t.base + SZ_4K, t.pfn + 1, text);
	EXPECT_NE(NULL, strcasestr(line, "split")) TH_LOG("no split decision in: %s", line);
	free(text);
}

/* Behaviour 7: after MAKE_SHARED, and after close(), a store works on the same PFN. */
TEST_F(fault, shared_again)
{
	struct fault_ctx *ctx = &self->ctx;
	struct snp_host_fault_stats f0, f1;
	int budget = LOG_BUDGET;
	__u64 pfn[2];
	char *p;

	p = get_pages(_metadata, ctx, 2);
	ASSERT_EQ(0, pagemap_pfns(p, 2, pfn));
	ctx->fd2 = snp_open();
	ASSERT_LE(0, ctx->fd2);
	make_private(_metadata, ctx, ctx->env.fd, p, 0x78000000ULL, 0);
	make_private(_metadata, ctx, ctx->fd2, p + SZ_4K, 0x78001000ULL, 0);
	read_fault_stats(_metadata, ctx->env.fd, &f0);
	expect_sigbus(_metadata, ctx, p + 1, "private through the first file");
	expect_sigbus(_metadata, ctx, p + SZ_4K + 1, "private through the second file");

	make_shared(_metadata, ctx->env.fd, p, 0);
	expect_store(_metadata, p + 1, 0x7a, "after MAKE_SHARED");
	EXPECT_EQ(pfn[0], pagemap_pfn(p));

	close_fd2(_metadata, ctx);
	EXPECT_EQ(0, lookup_bad(_metadata, ctx->env.fd, p + SZ_4K, &unassigned, &budget));
	expect_store(_metadata, p + SZ_4K + 1, 0x7b, "after close");
	EXPECT_EQ(pfn[1], pagemap_pfn(p + SZ_4K));
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_EQ(2LL, fdelta(&f0, &f1).sigbus);
}

/* What fork_check's child saw. */
struct fork_report {
	__u64 pfn;
	int same_data;
	int stored;
	int neighbour;
};

/*
 * Behaviour 8: after fork() the child's copy of the private page @priv is
 * another PFN with the same data, and the child may write it (and @nb); the
 * parent still may not, and its page is where it was.
 */
static void fork_check(struct __test_metadata *_metadata, struct fault_ctx *ctx,
		       char *priv, char *nb)
{
	struct snp_host_fault_stats f0, f1;
	struct fork_report *rep;
	char saved[SZ_4K];
	int status;
	__u64 pfn;
	pid_t pid;

	rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, rep);
	add_map(_metadata, ctx, rep, sizeof(*rep));
	memcpy(saved, priv, SZ_4K);
	pfn = pagemap_pfn(priv);
	ASSERT_NE(0ULL, pfn);
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		rep->same_data = !memcmp(saved, priv, SZ_4K);
		rep->stored = !store_byte(priv + 0x20, 0x7c) && priv[0x20] == 0x7c;
		rep->neighbour = !store_byte(nb + 0x20, 0x7d) && nb[0x20] == 0x7d;
		rep->pfn = pagemap_pfn(priv);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	EXPECT_NE(0ULL, rep->pfn);
	EXPECT_NE(pfn, rep->pfn) TH_LOG("the child maps the private page itself");
	EXPECT_TRUE(rep->same_data) TH_LOG("the child's copy differs");
	EXPECT_TRUE(rep->stored) TH_LOG("the child's store to its copy failed");
	EXPECT_TRUE(rep->neighbour) TH_LOG("the child's store to a neighbour failed");

	expect_sigbus(_metadata, ctx, priv + 0x20, "parent after fork");
	EXPECT_EQ(pfn, pagemap_pfn(priv));
	EXPECT_EQ(0, memcmp(saved, priv, SZ_4K));
	expect_store(_metadata, nb + 0x20, 0x7e, "parent's neighbour after fork");
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_EQ(1LL, fdelta(&f0, &f1).sigbus) TH_LOG("want the parent's SIGBUS only");
}

TEST_F(fault, fork_4k)
{
	struct fault_ctx *ctx = &self->ctx;
	char *p = get_pages(_metadata, ctx, 2);

	make_private(_metadata, ctx, ctx->env.fd, p, 0x79000000ULL, 0);
	fork_check(_metadata, ctx, p, p + SZ_4K);
}

/* fork() of a PMD-mapped THP holding a private 4K page splits the parent's PMD. */
TEST_F(fault, fork_thp)
{
	struct fault_ctx *ctx = &self->ctx;
	struct thp t;
	int ret;

	ret = get_thp(_metadata, ctx, &t);
	if (ret)
		SKIP(return, "%s", thp_why(ret));
	make_private(_metadata, ctx, ctx->env.fd, t.base + 17 * SZ_4K, 0x79211000ULL, 0);
	fork_check(_metadata, ctx, t.base + 17 * SZ_4K, t.base + 18 * SZ_4K);
	EXPECT_EQ(t.pfn + 17, pagemap_pfn(t.base + 17 * SZ_4K));
}

/*
 * Behaviour 10 (PSMASH, partly returned): a 2M private page smashed into
 * 4K entries and one of them made shared.  The store to that one splits the
 * PMD and succeeds; the others still fault.
 */
TEST_F(fault, psmash_partial)
{
	struct fault_ctx *ctx = &self->ctx;
	static const int still[] = { 0, 99, 101, PAGES_PER_2M - 1 };
	const int r = 100;
	struct snp_host_fault_stats f0, f1, f2;
	struct snp_host_stats s0, s1;
	long long split0;
	__u64 done = 0;
	struct thp t;
	size_t i;
	int ret;

	ret = get_thp(_metadata, ctx, &t);
	if (ret)
		SKIP(return, "%s", thp_why(ret));
	make_private(_metadata, ctx, ctx->env.fd, t.base, 0x7a000000ULL, SNP_HOST_LEVEL_2M);
	read_stats(_metadata, ctx->env.fd, &s0);
	ASSERT_EQ(0, snp_psmash(ctx->env.fd, t.base));
	make_shared(_metadata, ctx->env.fd, t.base + r * SZ_4K, 0);
	read_stats(_metadata, ctx->env.fd, &s1);
	expect_delta(_metadata, &s0, &s1, PAGES_PER_2M - 1, -1, 0, 1, 1);
	EXPECT_TRUE(thp_intact(&t)) TH_LOG("PSMASH or MAKE_SHARED changed the user mapping");
	split0 = split_pmd_count(_metadata);
	read_fault_stats(_metadata, ctx->env.fd, &f0);

	expect_store(_metadata, t.base + r * SZ_4K + 0x55, 0x33, "the returned page");
	read_fault_stats(_metadata, ctx->env.fd, &f1);
	EXPECT_EQ(split0 + 1, split_pmd_count(_metadata));
	EXPECT_EQ(1LL, fdelta(&f0, &f1).thp_splits);
	EXPECT_EQ(0LL, fdelta(&f0, &f1).sigbus);
	EXPECT_EQ(0, thp_pfns_moved(_metadata, &t));

	for (i = 0; i < ARRAY_SIZE(still); i++)
		expect_sigbus(_metadata, ctx, t.base + still[i] * SZ_4K + 0x55,
			      "a page still private after PSMASH");
	read_fault_stats(_metadata, ctx->env.fd, &f2);
	EXPECT_EQ((long long)ARRAY_SIZE(still), fdelta(&f1, &f2).sigbus);
	EXPECT_EQ(0LL, fdelta(&f1, &f2).thp_splits);
	EXPECT_EQ(split0 + 1, split_pmd_count(_metadata));

	ASSERT_EQ(0, snp_convert_range(ctx->env.fd, t.base, r, 0, 0, 0, false, &done));
	ASSERT_EQ(0, snp_convert_range(ctx->env.fd, t.base + (r + 1) * SZ_4K,
				       PAGES_PER_2M - r - 1, 0, 0, 0, false, &done));
	EXPECT_EQ(0, store_pages(t.base, PAGES_PER_2M, -1, 0x56, 0x34));
	EXPECT_EQ(0, thp_pfns_moved(_metadata, &t));
}

/*
 * Behaviour 9 (the race): storers write the shared pages of several THPs
 * while a converter makes a fixed set of other pages of the same THPs
 * private and shared again, so that MAKE_PRIVATE (which write-protects the
 * PMD) races with the stores that split it.  A prober stores to the
 * converter's pages too.  The storers never touch a page that can be
 * private, so any SIGBUS they get is wrong; the prober's stores are judged
 * by a generation count per page, bumped by the converter before and after
 * each conversion (gen % 4: 0 shared, 1 going private, 2 private, 3 going
 * shared): a SIGBUS while the page was shared throughout is wrong, and so is
 * a store that went through while it was private throughout.
 */
#define RACE_THPS		4
#define RACE_ROUNDS		2
#define RACE_CONV		8	/* converter pages per THP */
#define RACE_STRIDE		(PAGES_PER_2M / RACE_CONV)
#define RACE_STORERS		2
#define RACE_MS			1500

struct race {
	char *base[RACE_THPS];
	int fd;
	int stop;
	unsigned int gen[RACE_THPS][RACE_CONV];
	int conv_errors;
	char conv_why[128];
	int cycles;
	long probes, probe_sigbus, wrong_sigbus, wrong_store, bad_siginfo;
};

struct storer {
	struct race *r;
	int idx;
	char last;
	int passes;
	long wrong;
	void *wrong_addr;
};

static bool race_conv_page(int i)
{
	return i % RACE_STRIDE == RACE_STRIDE / 2;
}

static char *race_page(struct race *r, int t, int j)
{
	return r->base[t] + ((size_t)j * RACE_STRIDE + RACE_STRIDE / 2) * SZ_4K;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void race_fail(struct race *r, const char *what, int t, int j, int ret)
{
	if (!r->conv_errors++)
		snprintf(r->conv_why, sizeof(r->conv_why), "%s THP %d page %d: %s",
			 what, t, j, strerror(-ret));
}

static void *race_converter(void *arg)
{
	struct race *r = arg;
	double start = now_ms();
	int t, j, ret;

	do {
		for (t = 0; t < RACE_THPS; t++) {
			for (j = 0; j < RACE_CONV; j++) {
				__atomic_add_fetch(&r->gen[t][j], 1, __ATOMIC_SEQ_CST);
				ret = snp_make_private(r->fd, race_page(r, t, j),
						       0x7b000000ULL + ((t * RACE_CONV + j) << 12),
						       ASID, 0);
				/* A failed conversion leaves the page shared. */
				__atomic_add_fetch(&r->gen[t][j], ret ? 3 : 1, __ATOMIC_SEQ_CST);
				if (ret)
					race_fail(r, "MAKE_PRIVATE", t, j, ret);
			}
		}
		for (t = 0; t < RACE_THPS; t++) {
			for (j = 0; j < RACE_CONV; j++) {
				if (__atomic_load_n(&r->gen[t][j], __ATOMIC_SEQ_CST) % 4 != 2)
					continue;
				__atomic_add_fetch(&r->gen[t][j], 1, __ATOMIC_SEQ_CST);
				ret = snp_make_shared(r->fd, race_page(r, t, j), 0);
				if (ret) {
					/* Still private: stop judging it. */
					race_fail(r, "MAKE_SHARED", t, j, ret);
					__atomic_store_n(&r->stop, 1, __ATOMIC_SEQ_CST);
					continue;
				}
				__atomic_add_fetch(&r->gen[t][j], 1, __ATOMIC_SEQ_CST);
			}
		}
		r->cycles++;
	} while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST) &&
		 (now_ms() - start < RACE_MS || r->cycles < 2));
	__atomic_store_n(&r->stop, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *race_prober(void *arg)
{
	struct race *r = arg;
	unsigned int g1, g2;
	int t, j, faulted;
	char *addr;

	while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST)) {
		for (t = 0; t < RACE_THPS; t++) {
			for (j = 0; j < RACE_CONV; j++) {
				addr = race_page(r, t, j) + 0x200;
				g1 = __atomic_load_n(&r->gen[t][j], __ATOMIC_SEQ_CST);
				faulted = store_byte(addr, (char)r->probes);
				__atomic_thread_fence(__ATOMIC_SEQ_CST);
				g2 = __atomic_load_n(&r->gen[t][j], __ATOMIC_SEQ_CST);
				r->probes++;
				if (!faulted) {
					r->wrong_store += g1 == g2 && g1 % 4 == 2;
					continue;
				}
				r->probe_sigbus++;
				r->wrong_sigbus += g1 == g2 && g1 % 4 == 0;
				r->bad_siginfo += catcher.addr != addr ||
						  catcher.code != BUS_ADRERR;
			}
		}
	}
	return NULL;
}

static void *race_storer(void *arg)
{
	struct storer *s = arg;
	struct race *r = s->r;
	int t, i, off = 64 * (s->idx + 1);
	char *addr;
	char v;

	do {
		v = (char)(s->passes % 127 + 1);
		for (t = 0; t < RACE_THPS; t++) {
			for (i = 0; i < PAGES_PER_2M; i++) {
				if (race_conv_page(i))
					continue;
				addr = r->base[t] + (size_t)i * SZ_4K + off;
				if (store_byte(addr, v) && !s->wrong++)
					s->wrong_addr = addr;
			}
		}
		s->last = v;
		s->passes++;
	} while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST));
	return NULL;
}

TEST_F_TIMEOUT(fault, race, 90)
{
	struct fault_ctx *ctx = &self->ctx;
	struct thp thp[RACE_ROUNDS][RACE_THPS];
	struct snp_host_fault_stats f0, f1;
	struct storer st[RACE_STORERS];
	pthread_t conv, prober, tid[RACE_STORERS];
	int round, t, i, j, s, ret, lost, budget = LOG_BUDGET;
	struct race *r;

	for (round = 0; round < RACE_ROUNDS; round++) {
		for (t = 0; t < RACE_THPS; t++) {
			ret = get_thp(_metadata, ctx, &thp[round][t]);
			if (ret)
				SKIP(return, "%s", thp_why(ret));
			hold(_metadata, ctx, ctx->env.fd, thp[round][t].base, PAGES_PER_2M);
		}
	}
	r = calloc(1, sizeof(*r));
	ASSERT_NE(NULL, r);
	alarm(60);
	for (round = 0; round < RACE_ROUNDS; round++) {
		memset(r, 0, sizeof(*r));
		r->fd = ctx->env.fd;
		for (t = 0; t < RACE_THPS; t++)
			r->base[t] = thp[round][t].base;
		memset(st, 0, sizeof(st));
		read_fault_stats(_metadata, ctx->env.fd, &f0);

		ASSERT_EQ(0, pthread_create(&conv, NULL, race_converter, r));
		ASSERT_EQ(0, pthread_create(&prober, NULL, race_prober, r));
		for (s = 0; s < RACE_STORERS; s++) {
			st[s].r = r;
			st[s].idx = s;
			ASSERT_EQ(0, pthread_create(&tid[s], NULL, race_storer, &st[s]));
		}
		pthread_join(conv, NULL);
		pthread_join(prober, NULL);
		for (s = 0; s < RACE_STORERS; s++)
			pthread_join(tid[s], NULL);
		read_fault_stats(_metadata, ctx->env.fd, &f1);

		TH_LOG("round %d: %d cycles, %ld probes, %ld SIGBUS, %d and %d passes",
		       round, r->cycles, r->probes, r->probe_sigbus, st[0].passes,
		       st[1].passes);
		EXPECT_EQ(0, r->conv_errors) TH_LOG("converter: %s", r->conv_why);
		EXPECT_EQ(0L, r->wrong_sigbus) TH_LOG("SIGBUS on a page shared throughout");
		EXPECT_EQ(0L, r->wrong_store) TH_LOG("a store went through to a private page");
		EXPECT_EQ(0L, r->bad_siginfo) TH_LOG("SIGBUS with a wrong si_addr or si_code");
		for (s = 0; s < RACE_STORERS; s++) {
			const struct storer *w = &st[s];

			EXPECT_EQ(0L, w->wrong)
				TH_LOG("storer %d: SIGBUS at shared %p", w->idx, w->wrong_addr);
		}
		/*
		 * A store that races with its page becoming private can pass the
		 * fault decision (not yet a guest page) and then be refused by the
		 * mm's own check in the write fault (now one): that SIGBUS counts
		 * as gup_refused, not sigbus.
		 */
		EXPECT_LE(fdelta(&f0, &f1).sigbus, r->probe_sigbus)
			TH_LOG("more SIGBUS counted than caught");
		EXPECT_LE(r->probe_sigbus,
			  fdelta(&f0, &f1).sigbus + fdelta(&f0, &f1).gup_refused)
			TH_LOG("a caught SIGBUS was counted nowhere");
		EXPECT_EQ(0LL, fdelta(&f0, &f1).no_progress);

		/* Every storer's last pass is in memory; no page moved. */
		for (t = 0, lost = 0; t < RACE_THPS; t++) {
			for (i = 0; i < PAGES_PER_2M; i++) {
				if (race_conv_page(i))
					continue;
				for (s = 0; s < RACE_STORERS; s++)
					lost += r->base[t][i * SZ_4K + 64 * (s + 1)] != st[s].last;
			}
			EXPECT_EQ(0, thp_pfns_moved(_metadata, &thp[round][t]));
			for (j = 0; j < RACE_CONV; j++)
				EXPECT_EQ(0, lookup_bad(_metadata, ctx->env.fd, race_page(r, t, j),
							&unassigned, &budget));
		}
		EXPECT_EQ(0, lost) TH_LOG("stores lost");
	}
	alarm(0);
	free(r);
}

TEST_HARNESS_MAIN
