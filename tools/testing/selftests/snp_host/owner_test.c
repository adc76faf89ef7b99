// SPDX-License-Identifier: GPL-2.0
/*
 * A /dev/snp_host file belongs to the process that opened it.
 *
 * The module keys the pages of a file by their address in the opener's
 * memory, so the file must refuse (EPERM, changing nothing) the page
 * ioctls of any other process that gets hold of it: a forked child, which
 * sees the same addresses mapped to its own copies, or a process the file
 * was passed to, over a unix socket (SCM_RIGHTS) or, in a kernel without
 * unix sockets (CONFIG_UNIX=n), with pidfd_getfd().  Without the check, the
 * child's MAKE_SHARED would return the parent's page to the host by address
 * and its MAKE_PRIVATE would pin its own page into the parent's file.
 *
 * GET_STATUS and GET_STATS stay allowed from any process: they read
 * module-wide state and touch no page of the opener.  LOOKUP is a page
 * ioctl (it translates an address of the caller) and is refused with the
 * others.
 *
 * Closing the last reference returns everything the file holds, whoever
 * closes it and whether or not the opener still exists.
 *
 * "Changed nothing" is checked through the opener's LOOKUP against
 * /proc/self/pagemap, the module's counters, the debugfs rmp dump, the
 * FOLL_PIN counts of /proc/vmstat and VmPin of the opener.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "snp_host_check.h"

#define NPAGES		4

#ifndef __NR_pidfd_open
#define __NR_pidfd_open		434
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd	438
#endif

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000
#endif

/* What another process tries through a file it did not open. */
enum op {
	OP_LOOKUP,
	OP_MAKE_PRIVATE,
	OP_MAKE_SHARED,
	OP_PSMASH,
	OP_RANGE_PRIVATE,
	OP_RANGE_SHARED,
	OP_GET_STATUS,
	OP_GET_STATS,
	NR_OPS,
};

static const char *const op_names[NR_OPS] = {
	"LOOKUP", "MAKE_PRIVATE", "MAKE_SHARED", "PSMASH",
	"CONVERT_RANGE to private", "CONVERT_RANGE to shared",
	"GET_STATUS", "GET_STATS",
};

/* Shared between a test and the processes it forks. */
struct report {
	int ret[NR_OPS];
	bool tried[NR_OPS];
	struct snp_host_status status;
	int stage_ret;
	char why[160];
	/* The opener, its file and its pages (the passed-file test). */
	pid_t opener_pid;
	int opener_fd;
	char *hva;
	__u64 pfn[NPAGES];
};

/*
 * Tries every ioctl through @fd, a file another process opened: @theirs is
 * an address at which that process has private pages (@thp its private 2M
 * page, or NULL), @mine pages this process owns that are still shared.
 */
static void try_all(int fd, char *theirs, char *thp, char *mine,
		    struct report *rep)
{
	struct snp_host_stats stats;
	struct snp_host_page p;
	__u64 done;
	int i;

	for (i = 0; i < NR_OPS; i++)
		rep->tried[i] = true;
	rep->ret[OP_LOOKUP] = snp_lookup(fd, theirs, &p);
	rep->ret[OP_MAKE_PRIVATE] = snp_make_private(fd, mine, 0x4000000, 7, 0);
	rep->ret[OP_MAKE_SHARED] = snp_make_shared(fd, theirs, 0);
	if (thp)
		rep->ret[OP_PSMASH] = snp_psmash(fd, thp);
	else
		rep->tried[OP_PSMASH] = false;
	rep->ret[OP_RANGE_PRIVATE] =
		snp_convert_range(fd, mine + SZ_4K, NPAGES - 1, 0x5000000, 7,
				  SNP_HOST_LEVEL_4K, true, &done);
	rep->ret[OP_RANGE_SHARED] =
		snp_convert_range(fd, theirs + SZ_4K, NPAGES - 1, 0, 0,
				  SNP_HOST_LEVEL_4K, false, &done);
	rep->ret[OP_GET_STATUS] = snp_get_status(fd, &rep->status);
	rep->ret[OP_GET_STATS] = snp_get_stats(fd, &stats);
}

/* Page ioctls must have been refused with EPERM, the queries answered. */
static void expect_refusals(struct __test_metadata *_metadata,
			    const struct report *rep, int own_fd,
			    const char *who)
{
	struct snp_host_status st;
	int i;

	for (i = 0; i < NR_OPS; i++) {
		int want = i == OP_GET_STATUS || i == OP_GET_STATS ? 0 : -EPERM;

		if (!rep->tried[i])
			continue;
		EXPECT_EQ(want, rep->ret[i])
			TH_LOG("%s: %s through a file it did not open: want %s, got %s",
			       who, op_names[i], want ? strerror(-want) : "success",
			       rep->ret[i] ? strerror(-rep->ret[i]) : "success");
	}
	ASSERT_EQ(0, snp_get_status(own_fd, &st));
	if (!rep->ret[OP_GET_STATUS])
		EXPECT_EQ(0, memcmp(&st, &rep->status, sizeof(st)))
			TH_LOG("%s: GET_STATUS differs from the opener's", who);
}

/* What must not change: the opener's view and the system's. */
struct owner_state {
	struct snap snap;
	__u64 pfn[3 * NPAGES];
	int npfn;
	long long pins;
	long long vm_pin;
};

static void state_take(struct __test_metadata *_metadata,
		       const struct env *env, struct owner_state *s,
		       void *const *hvas, int nhvas, char *const *ranges,
		       int nranges)
{
	int i;

	memset(s, 0, sizeof(*s));
	snap_take(env, &s->snap, hvas, nhvas);
	for (i = 0; i < nranges; i++)
		ASSERT_EQ(0, pagemap_pfns(ranges[i], NPAGES, s->pfn + i * NPAGES));
	s->npfn = nranges * NPAGES;
	s->pins = foll_pins_held();
	s->vm_pin = proc_status_kb(0, "VmPin");
}

static void state_expect_same(struct __test_metadata *_metadata,
			      struct owner_state *a, struct owner_state *b,
			      const char *what)
{
	int i, moved = 0;

	expect_same(_metadata, &a->snap, &b->snap, what);
	for (i = 0; i < a->npfn; i++)
		moved += a->pfn[i] != b->pfn[i];
	EXPECT_EQ(0, moved) TH_LOG("%s: pages of the opener moved (pagemap)", what);
	EXPECT_EQ(a->pins, b->pins) TH_LOG("%s: FOLL_PIN references changed", what);
	EXPECT_EQ(a->vm_pin, b->vm_pin) TH_LOG("%s: VmPin of the opener changed", what);
	free(a->snap.rmp);
	free(b->snap.rmp);
	a->snap.rmp = NULL;
	b->snap.rmp = NULL;
}

/*
 * Passes @fd to another process: over the unix socket @sock, or when there
 * is none (@sock < 0), by telling its number so that the other process can
 * take it with pidfd_getfd().  0 or a negative errno.
 */
static int send_fd(int sock, int fd, struct report *rep)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct msghdr msg = { 0 };
	struct cmsghdr *cmsg;
	char byte = 'f';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };

	rep->opener_pid = getpid();
	rep->opener_fd = fd;
	if (sock < 0)
		return 0;
	memset(cbuf, 0, sizeof(cbuf));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf;
	msg.msg_controllen = sizeof(cbuf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -errno;
}

/* Receives a file sent by send_fd(); the new fd or a negative errno. */
static int recv_fd(int sock, const struct report *rep)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct msghdr msg = { 0 };
	struct cmsghdr *cmsg;
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	int fd, pidfd;

	if (sock < 0) {
		pidfd = syscall(__NR_pidfd_open, rep->opener_pid, 0);
		if (pidfd < 0)
			return -errno;
		fd = syscall(__NR_pidfd_getfd, pidfd, rep->opener_fd, 0);
		fd = fd < 0 ? -errno : fd;
		close(pidfd);
		return fd;
	}
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf;
	msg.msg_controllen = sizeof(cbuf);
	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
		return -errno;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS)
		return -EBADMSG;
	memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
}

/* One byte down a pipe or socket: the next stage may start. */
static bool say(int fd)
{
	char c = 0;

	return write(fd, &c, 1) == 1;
}

static bool wait_word(int fd)
{
	char c;

	return read(fd, &c, 1) == 1;
}

#define MAX_CHILDREN	2

FIXTURE(owner)
{
	struct env env;
	struct report *rep;
	pid_t child[MAX_CHILDREN];
};

FIXTURE_SETUP(owner)
{
	self->env.fd = -1;
	if (geteuid())
		SKIP(return, "needs root (pagemap PFNs, the device)");
	if (access(SNP_MODULE_DIR, F_OK))
		SKIP(return, "snp_host.ko is not loaded");
	self->env.fd = snp_open();
	ASSERT_LE(0, self->env.fd) TH_LOG("open %s: %s", SNP_DEV, strerror(-self->env.fd));
	self->env.debugfs = debugfs_mounted() && !access(SNP_DEBUGFS, F_OK);
	self->rep = mmap(NULL, sizeof(*self->rep), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->rep);
	memset(self->rep, 0, sizeof(*self->rep));
}

/* Children still around after a failure would hold files and pages. */
FIXTURE_TEARDOWN(owner)
{
	int i;

	for (i = 0; i < MAX_CHILDREN; i++) {
		if (self->child[i] <= 0)
			continue;
		kill(self->child[i], SIGKILL);
		waitpid(self->child[i], NULL, 0);
	}
	if (self->env.fd >= 0)
		close(self->env.fd);
}

/*
 * A forked child inherits the parent's file and sees the parent's
 * addresses, backed by its own copies: every page ioctl it makes through
 * that file is refused and changes nothing.
 */
TEST_F(owner, forked_child_gets_eperm)
{
	const struct env *env = &self->env;
	struct report *rep = self->rep;
	struct owner_state before, after;
	char *mine, *theirs, *ranges[2];
	void *hvas[SNAP_PAGES];
	struct thp t = { 0 };
	int i, n = 0, status;
	bool have_thp;
	pid_t pid;

	theirs = map_pages(NPAGES);
	mine = map_pages(NPAGES);
	ASSERT_NE(NULL, theirs);
	ASSERT_NE(NULL, mine);
	for (i = 0; i < NPAGES; i++)
		ASSERT_EQ(0, snp_make_private(env->fd, theirs + i * SZ_4K,
					      0x800000 + i * SZ_4K, 3, 0));
	have_thp = !thp_alloc(&t);
	if (have_thp)
		have_thp = !snp_make_private(env->fd, t.base, 0x1000000, 3,
					     SNP_HOST_LEVEL_2M);
	if (!have_thp)
		TH_LOG("no private THP: PSMASH is not tried");

	hvas[n++] = theirs;
	hvas[n++] = theirs + (NPAGES - 1) * SZ_4K;
	hvas[n++] = mine;
	hvas[n++] = mine + (NPAGES - 1) * SZ_4K;
	if (have_thp) {
		hvas[n++] = t.base;
		hvas[n++] = t.base + SZ_4K;
	}
	ranges[0] = theirs;
	ranges[1] = mine;
	state_take(_metadata, env, &before, hvas, n, ranges, 2);

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		try_all(env->fd, theirs, have_thp ? t.base : NULL, mine, rep);
		_exit(0);
	}
	self->child[0] = pid;
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	self->child[0] = 0;
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));

	expect_refusals(_metadata, rep, env->fd, "forked child");
	state_take(_metadata, env, &after, hvas, n, ranges, 2);
	state_expect_same(_metadata, &before, &after, "after the child's ioctls");

	/* The opener still owns its pages and gets them back. */
	for (i = 0; i < NPAGES; i++)
		EXPECT_EQ(0, snp_make_shared(env->fd, theirs + i * SZ_4K, 0));
	if (have_thp) {
		EXPECT_EQ(0, snp_make_shared(env->fd, t.base, SNP_HOST_LEVEL_2M));
		thp_free(&t);
	}
}

/*
 * The passed-file test: the opener A makes pages private and sends its file
 * to B, a process it did not fork.  B maps its own pages at A's addresses
 * (so that an ioctl keyed by address would name A's pages) and tries every
 * ioctl; A then checks its pages.  Finally A closes its file and exits, and
 * B's close, the last one, must return A's pages.
 */
static int opener(int sock, int cmd, int ack, struct report *rep)
{
	struct snp_host_page p;
	char *pages;
	int fd, i, ret;

	fd = snp_open();
	pages = map_pages(NPAGES);
	if (fd < 0 || !pages) {
		snprintf(rep->why, sizeof(rep->why), "A: no file or no pages");
		return 1;
	}
	for (i = 0; i < NPAGES; i++) {
		ret = snp_make_private(fd, pages + i * SZ_4K,
				       0x900000 + i * SZ_4K, 4, 0);
		if (ret) {
			snprintf(rep->why, sizeof(rep->why),
				 "A: MAKE_PRIVATE %d: %s", i, strerror(-ret));
			return 1;
		}
	}
	if (pagemap_pfns(pages, NPAGES, rep->pfn))
		return 1;
	rep->hva = pages;
	if (send_fd(sock, fd, rep) || !say(ack))
		return 1;
	/* B has tried everything: are A's pages what A made them? */
	if (!wait_word(cmd))
		return 1;
	rep->stage_ret = 0;
	for (i = 0; i < NPAGES; i++) {
		ret = snp_lookup(fd, pages + i * SZ_4K, &p);
		if (ret || !p.assigned || p.asid != 4 || p.level ||
		    p.gpa != 0x900000 + i * SZ_4K || p.pfn != rep->pfn[i] ||
		    pagemap_pfn(pages + i * SZ_4K) != rep->pfn[i]) {
			snprintf(rep->why, sizeof(rep->why),
				 "A: LOOKUP %d: %s assigned %u asid %u gpa 0x%llx pfn 0x%llx (was 0x%llx)",
				 i, ret ? strerror(-ret) : "ok", p.assigned,
				 p.asid, p.gpa, p.pfn, rep->pfn[i]);
			rep->stage_ret = 1;
			break;
		}
	}
	if (!say(ack) || !wait_word(cmd))
		return 1;
	/* Gone: B holds the last reference. */
	close(fd);
	return 0;
}

static int receiver(int sock, int cmd, int ack, struct report *rep)
{
	char *mine, *theirs;
	int fd;

	fd = recv_fd(sock, rep);
	if (fd < 0) {
		snprintf(rep->why, sizeof(rep->why), "B: no file: %s", strerror(-fd));
		return 1;
	}
	/* First: B's layout is A's, so B's next mapping would land there. */
	theirs = mmap(rep->hva, NPAGES * SZ_4K, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	mine = map_pages(NPAGES);
	if (!mine || theirs != rep->hva) {
		snprintf(rep->why, sizeof(rep->why),
			 "B: cannot map pages at A's address %p", rep->hva);
		return 1;
	}
	memset(theirs, 0x42, NPAGES * SZ_4K);
	try_all(fd, theirs, NULL, mine, rep);
	if (!say(ack) || !wait_word(cmd))
		return 1;
	close(fd);
	return say(ack) ? 0 : 1;
}

/* Forks a child that runs @fn; its pid, or -1. */
static pid_t spawn(int (*fn)(int, int, int, struct report *), int sock,
		   int cmd[2], int ack[2], struct report *rep)
{
	pid_t pid = fork();

	if (pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		_exit(fn(sock, cmd[0], ack[1], rep));
	}
	return pid;
}

TEST_F(owner, passed_file_gets_eperm_and_last_close_returns)
{
	const struct want w = { .assigned = 1, .asid = 4, .gpa = 0x900000 };
	const struct env *env = &self->env;
	struct report *rep = self->rep;
	struct snp_host_stats st0, st1, st2;
	int sv[2], acmd[2], aack[2], bcmd[2], back[2], status;
	char *before_rmp = NULL, *after_rmp = NULL;
	long long pins0;
	pid_t a, b;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
		/* The test kernel has no CONFIG_NET: no socketpair() at all. */
		TH_LOG("no unix sockets (%s): the file goes over pidfd_getfd()",
		       strerror(errno));
		sv[0] = -1;
		sv[1] = -1;
	}
	ASSERT_EQ(0, pipe(acmd));
	ASSERT_EQ(0, pipe(aack));
	pins0 = foll_pins_held();
	read_stats(_metadata, env->fd, &st0);

	a = spawn(opener, sv[0], acmd, aack, rep);
	ASSERT_LE(0, a);
	self->child[0] = a;
	/* Only the child holds its ends: if it dies, we read EOF. */
	close(acmd[0]);
	close(aack[1]);
	ASSERT_TRUE(wait_word(aack[0])) TH_LOG("%s", rep->why);
	EXPECT_EQ(pins0 + NPAGES, foll_pins_held());
	expect_rmp(_metadata, env, rep->pfn, NPAGES, &w, SZ_4K);
	read_stats(_metadata, env->fd, &st1);
	if (env->debugfs)
		before_rmp = read_text(SNP_DEBUGFS_RMP);

	/* Made after A exists, so that A holds none of B's. */
	ASSERT_EQ(0, pipe(bcmd));
	ASSERT_EQ(0, pipe(back));
	b = spawn(receiver, sv[1], bcmd, back, rep);
	ASSERT_LE(0, b);
	self->child[1] = b;
	close(bcmd[0]);
	close(back[1]);
	ASSERT_TRUE(wait_word(back[0])) TH_LOG("%s", rep->why);
	expect_refusals(_metadata, rep, env->fd, "process the file was passed to");

	/* Nothing changed, for A or for anyone. */
	ASSERT_TRUE(say(acmd[1]));
	ASSERT_TRUE(wait_word(aack[0]));
	EXPECT_EQ(0, rep->stage_ret) TH_LOG("%s", rep->why);
	read_stats(_metadata, env->fd, &st2);
	EXPECT_EQ(0, stats_diff(_metadata, &st1, &st2, "B's ioctls"));
	if (env->debugfs) {
		after_rmp = read_text(SNP_DEBUGFS_RMP);
		ASSERT_NE(NULL, before_rmp);
		ASSERT_NE(NULL, after_rmp);
		EXPECT_STREQ(before_rmp, after_rmp) TH_LOG("B's ioctls changed the RMP");
	}
	EXPECT_EQ(pins0 + NPAGES, foll_pins_held());

	/* A closes and exits: B's file still holds A's pages. */
	ASSERT_TRUE(say(acmd[1]));
	ASSERT_EQ(a, waitpid(a, &status, 0));
	self->child[0] = 0;
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status)) TH_LOG("%s", rep->why);
	EXPECT_EQ(pins0 + NPAGES, foll_pins_held())
		TH_LOG("pages of a live file were released with their opener");
	expect_rmp(_metadata, env, rep->pfn, NPAGES, &w, SZ_4K);

	/* B's close is the last: everything comes back. */
	ASSERT_TRUE(say(bcmd[1]));
	ASSERT_TRUE(wait_word(back[0]));
	ASSERT_EQ(b, waitpid(b, &status, 0));
	self->child[1] = 0;
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status)) TH_LOG("%s", rep->why);
	EXPECT_EQ(pins0, foll_pins_held()) TH_LOG("the last close left pins behind");
	expect_rmp(_metadata, env, rep->pfn, NPAGES, &unassigned, 0);
	read_stats(_metadata, env->fd, &st2);
	EXPECT_EQ(st0.private_4k, st2.private_4k);
	EXPECT_EQ(st0.private_2m, st2.private_2m);
	EXPECT_EQ(st0.leaked_pages, st2.leaked_pages);
	free(before_rmp);
	free(after_rmp);
}

/*
 * The opener makes pages private, forks, closes its own file and lets the
 * child close the last reference: the pages return to the host, the pins
 * and the opener's VmPin go back to where they were.
 */
TEST_F(owner, last_close_in_a_child_returns_everything)
{
	const struct want w = { .assigned = 1, .asid = 5, .gpa = 0xa00000 };
	const struct want w2m = { .assigned = 1, .asid = 5, .gpa = 0x1200000,
				  .level = SNP_HOST_LEVEL_2M };
	const struct env *env = &self->env;
	struct snp_host_stats st0, st1;
	int fd, go[2], i, status;
	long long pins0, vm_pin0;
	struct thp t = { 0 };
	__u64 pfn[2 * NPAGES];
	bool have_thp;
	char *p;
	pid_t pid;

	p = map_pages(2 * NPAGES);
	ASSERT_NE(NULL, p);
	have_thp = !thp_alloc(&t);
	ASSERT_EQ(0, pipe(go));
	pins0 = foll_pins_held();
	vm_pin0 = proc_status_kb(0, "VmPin");
	read_stats(_metadata, env->fd, &st0);

	fd = snp_open();
	ASSERT_LE(0, fd);
	for (i = 0; i < NPAGES; i++)
		ASSERT_EQ(0, snp_make_private(fd, p + i * SZ_4K,
					      w.gpa + i * SZ_4K, w.asid, 0));
	ASSERT_EQ(0, snp_convert_range(fd, p + NPAGES * SZ_4K, NPAGES,
				       w.gpa + NPAGES * SZ_4K, w.asid,
				       SNP_HOST_LEVEL_4K, true, NULL));
	if (have_thp)
		have_thp = !snp_make_private(fd, t.base, w2m.gpa, w2m.asid,
					     SNP_HOST_LEVEL_2M);
	if (!have_thp)
		TH_LOG("no private THP: 4K pages only");
	ASSERT_EQ(0, pagemap_pfns(p, 2 * NPAGES, pfn));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Holds the only reference once the parent closed its fd. */
		close(go[1]);
		close(env->fd);
		if (!wait_word(go[0]))
			_exit(1);
		_exit(close(fd) ? 2 : 0);
	}
	self->child[0] = pid;
	close(go[0]);
	ASSERT_EQ(0, close(fd));

	/* The child's copy of the file still holds everything. */
	EXPECT_EQ(pins0 + 2 * NPAGES + (have_thp ? PAGES_PER_2M : 0),
		  foll_pins_held());
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, p, 2 * NPAGES, &w,
				      SZ_4K));
	read_stats(_metadata, env->fd, &st1);
	EXPECT_EQ(2 * NPAGES, (long long)(st1.private_4k - st0.private_4k));

	ASSERT_TRUE(say(go[1]));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	self->child[0] = 0;
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));

	EXPECT_EQ(pins0, foll_pins_held()) TH_LOG("pins left behind by the child's close");
	EXPECT_EQ(vm_pin0, proc_status_kb(0, "VmPin"))
		TH_LOG("the opener's VmPin was not given back by another process's close");
	EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, p, 2 * NPAGES,
				      &unassigned, 0));
	expect_rmp(_metadata, env, pfn, 2 * NPAGES, &unassigned, 0);
	read_stats(_metadata, env->fd, &st1);
	EXPECT_EQ(st0.private_4k, st1.private_4k);
	EXPECT_EQ(st0.private_2m, st1.private_2m);
	EXPECT_EQ(st0.leaked_pages, st1.leaked_pages);
	if (have_thp) {
		EXPECT_EQ(0, lookup_range_bad(_metadata, env->fd, t.base, 1,
					      &unassigned, 0));
		expect_rmp_range(_metadata, env, t.pfn, 1, &unassigned, 0);
		/* Shared again: the host may write it. */
		memset(t.base, 0x5a, SZ_2M);
		thp_free(&t);
	}
	memset(p, 0x5a, 2 * NPAGES * SZ_4K);
	close(go[1]);
}

TEST_HARNESS_MAIN
