// SPDX-License-Identifier: GPL-2.0
/*
 * Long operations of snp_host yield and can be killed.
 *
 * 512 MiB of 4K pages (131072 pages, MADV_NOHUGEPAGE so that every batch
 * of the module holds 4096 distinct pages) is converted in one
 * CONVERT_RANGE and returned by one close():
 *
 * - a process killed with SIGKILL in the middle of the conversion exits,
 *   the conversion stops (the module checks for fatal signals between
 *   batches) and every page comes back: the FOLL_PIN references of
 *   /proc/vmstat, the module's private_4k/private_2m gauges and the debugfs
 *   rmp dump are where they were;
 *
 * - converting the range and closing the file that holds it produce no
 *   soft lockup, hung task or RCU stall in the kernel log, with the
 *   watchdogs made sensitive for the test (kernel.watchdog_thresh = 1, so a
 *   CPU that does not reschedule for 2 s is reported, and
 *   kernel.hung_task_timeout_secs = 2); and while the file is being closed,
 *   another process keeps converting a page of its own, which it cannot do
 *   if the close holds the module-wide locks for the whole walk.
 *
 * The watchdog settings are put back by a guard process of its own session
 * that waits for the test to end, however it ends (an assertion, the
 * harness's timeout, SIGKILL).
 *
 * On a kernel several times slower than the test VM's usual one (KASAN:
 * vm/init sets SNP_HOST_TEST_SLOWDOWN to the factor), the thresholds grow by
 * that factor and the range shrinks to a quarter (8 batches of 4096 pages), so
 * that the test measures the module's lock holds, not the sanitizer, within
 * the harness's timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "snp_host_check.h"

#define BIG_PAGES		(512UL << 20 >> 12)	/* 512 MiB of 4K pages */
#define MAX_SLOWDOWN		60	/* kernel.watchdog_thresh's ceiling */
#define BATCH_PAGES		4096	/* the module's batch, snp_host/convert.rs */
#define WATCHDOG_THRESH		"/proc/sys/kernel/watchdog_thresh"
#define HUNG_TASK_TIMEOUT	"/proc/sys/kernel/hung_task_timeout_secs"

#define OP_RING			65536

#define SET(flag)		__atomic_store_n(&(flag), 1, __ATOMIC_RELEASE)
#define IS_SET(flag)		__atomic_load_n(&(flag), __ATOMIC_ACQUIRE)

/* The range and the watchdog scale, set by the fixture (see the top). */
static unsigned long big_pages = BIG_PAGES;
static int slowdown = 1;
#define BIG_MIB			(big_pages >> 8)

/* What the kernel log must not say while the test runs. */
static const char *const lockup_reports[] = {
	"soft lockup", "blocked for more than", "hung_task", "detected stall",
	"self-detected stall",
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Fails for each lockup report in the kernel log after record @seq. */
static void expect_no_lockup(struct __test_metadata *_metadata,
			     long long seq, const char *when)
{
	char rec[8192];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(lockup_reports); i++) {
		int found = kmsg_scan(seq, lockup_reports[i], rec, sizeof(rec),
				      NULL);

		ASSERT_LE(0, found) TH_LOG("cannot read /dev/kmsg: %s", strerror(-found));
		EXPECT_EQ(0, found) TH_LOG("%s: the kernel reported: %s", when, rec);
	}
}

/* Waits for @pid, at most @secs seconds; its status, or -1 if it did not end. */
static int wait_for(pid_t pid, double secs)
{
	double end = now() + secs;
	int status;

	while (now() < end) {
		pid_t got = waitpid(pid, &status, WNOHANG);

		if (got == pid)
			return status;
		if (got < 0)
			return -1;
		usleep(1000);
	}
	return -1;
}

/* Shared between a test and the processes it forks. */
struct shared {
	int ready;	/* these three: __atomic_*() across processes */
	int returned;	/* the child's CONVERT_RANGE came back */
	int ret;
	__u64 done;
	char why[160];
	/* The contender of close_without_lockup. */
	int go;
	int stop;
	long long ops;
	double op_end[OP_RING];	/* when the last OP_RING ops ended */
	double longest;
	int err;
};

/* A knob of /proc/sys set for the test and put back after it. */
struct knob {
	const char *path;
	long long want;
	long long old;
	bool present;
};

static void knobs_restore(struct knob *k, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (k[i].present)
			write_ll(k[i].path, k[i].old);
}

/*
 * Sets the knobs that exist to their wanted values.  A guard in a session
 * of its own (the harness kills the test's process group on a timeout)
 * holds the read end of a pipe whose write end only the test process has:
 * when the test process ends, the guard puts the old values back.
 */
static int knobs_set(struct knob *k, int n, int *guard_fd, pid_t *guard)
{
	int p[2], i, fd, ret;

	for (i = 0; i < n; i++) {
		k[i].present = !access(k[i].path, W_OK);
		k[i].old = k[i].present ? read_ll(k[i].path) : -1;
		if (k[i].old < 0)
			k[i].present = false;
	}
	if (pipe(p))
		return -errno;
	*guard = fork();
	if (*guard < 0)
		return -errno;
	if (*guard == 0) {
		char c;

		setsid();
		for (fd = 3; fd < 1024; fd++)
			if (fd != p[0])
				close(fd);
		while (read(p[0], &c, 1) > 0)
			;
		knobs_restore(k, n);
		_exit(0);
	}
	close(p[0]);
	*guard_fd = p[1];
	for (i = 0; i < n; i++) {
		if (!k[i].present)
			continue;
		ret = write_ll(k[i].path, k[i].want);
		if (ret)
			return ret;
	}
	return 0;
}

FIXTURE(big)
{
	struct env env;
	struct shared *sh;
	pid_t child[2];
	struct knob knob[2];
	int guard_fd;
	pid_t guard;
};

FIXTURE_SETUP(big)
{
	self->env.fd = -1;
	self->guard_fd = -1;
	if (geteuid())
		SKIP(return, "needs root (the device, sysctls, debugfs)");
	if (access(SNP_MODULE_DIR, F_OK))
		SKIP(return, "snp_host.ko is not loaded");
	slowdown = getenv("SNP_HOST_TEST_SLOWDOWN") ?
		atoi(getenv("SNP_HOST_TEST_SLOWDOWN")) : 1;
	if (slowdown < 1 || slowdown > MAX_SLOWDOWN)
		slowdown = 1;
	big_pages = slowdown > 1 ? BIG_PAGES / 4 : BIG_PAGES;
	if (slowdown > 1)
		TH_LOG("slow kernel (SNP_HOST_TEST_SLOWDOWN=%d): %lu MiB, watchdogs %d s and %d s",
		       slowdown, BIG_MIB, slowdown, 2 * slowdown);
	if (meminfo_read("MemAvailable") < (long long)(big_pages * 4) * 3 / 2)
		SKIP(return, "needs %lu MiB of available memory for %lu MiB private",
		     BIG_MIB * 3 / 2, BIG_MIB);
	self->env.debugfs = debugfs_mounted() && !access(SNP_DEBUGFS, F_OK);
	self->sh = mmap(NULL, sizeof(*self->sh), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->sh);
	memset(self->sh, 0, sizeof(*self->sh));
	/* The test's own file is opened by each test, after its forks. */
}

FIXTURE_TEARDOWN(big)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (self->child[i] <= 0)
			continue;
		kill(self->child[i], SIGKILL);
		waitpid(self->child[i], NULL, 0);
	}
	if (self->env.fd >= 0)
		close(self->env.fd);
	if (self->guard_fd >= 0) {
		knobs_restore(self->knob, 2);
		close(self->guard_fd);
		waitpid(self->guard, NULL, 0);
	}
}

/* The child of killed_mid_conversion: converts the range when told to. */
static int convert_big(struct shared *sh, int go)
{
	char *p, c;
	int fd;

	fd = snp_open();
	p = map_pages(big_pages);
	if (fd < 0 || !p) {
		snprintf(sh->why, sizeof(sh->why), "no file or no %lu MiB", BIG_MIB);
		return 1;
	}
	SET(sh->ready);
	if (read(go, &c, 1) != 1)
		return 1;
	sh->ret = snp_convert_range(fd, p, big_pages, 0x100000000ULL, 1,
				    SNP_HOST_LEVEL_4K, true, &sh->done);
	SET(sh->returned);
	/* Wait for the SIGKILL that should have come already. */
	pause();
	return 0;
}

TEST_F_TIMEOUT(big, killed_mid_conversion, 240)
{
	const struct env *env = &self->env;
	struct shared *sh = self->sh;
	struct snp_host_stats st0, st1;
	long long pins0, acq0, acq1, seq0;
	char *rmp0 = NULL, *rmp1 = NULL;
	double t_kill, t_gone, deadline;
	int go[2], status;
	pid_t pid;

	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(go[1]);
		_exit(convert_big(sh, go[0]));
	}
	self->child[0] = pid;
	close(go[0]);
	self->env.fd = snp_open();
	ASSERT_LE(0, self->env.fd);

	deadline = now() + 60;
	while (!IS_SET(sh->ready) && now() < deadline && waitpid(pid, NULL, WNOHANG) == 0)
		usleep(1000);
	ASSERT_TRUE(IS_SET(sh->ready)) TH_LOG("child: %s", sh->why);
	seq0 = kmsg_last_seq();
	read_stats(_metadata, env->fd, &st0);
	pins0 = foll_pins_held();
	acq0 = vmstat_read("nr_foll_pin_acquired");
	ASSERT_LE(0, pins0) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	if (env->debugfs)
		rmp0 = read_text(SNP_DEBUGFS_RMP);

	/*
	 * Kill it once the first batch is private, long before the last.
	 * The module's gauge only says when: it is polled cheaply, where
	 * /proc/vmstat would need a fold of every CPU's counters each time.
	 */
	ASSERT_EQ(1, write(go[1], "g", 1));
	deadline = now() + 120;
	do {
		usleep(1000);
		read_stats(_metadata, env->fd, &st1);
	} while (st1.private_4k < st0.private_4k + BATCH_PAGES &&
		 !IS_SET(sh->returned) && now() < deadline);
	ASSERT_FALSE(IS_SET(sh->returned))
		TH_LOG("CONVERT_RANGE of %lu MiB ended (%s, done %llu) before it could be killed",
		       BIG_MIB, sh->ret ? strerror(-sh->ret) : "success", sh->done);
	ASSERT_LE(st0.private_4k + BATCH_PAGES, st1.private_4k)
		TH_LOG("not one batch was converted within 120 s");
	t_kill = now();
	ASSERT_EQ(0, kill(pid, SIGKILL));
	status = wait_for(pid, 120);
	t_gone = now();
	ASSERT_NE(-1, status) TH_LOG("the killed process did not exit within 120 s");
	self->child[0] = 0;
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	TH_LOG("gone %.2f s after SIGKILL", t_gone - t_kill);

	/* It stopped: not every page was pinned... */
	acq1 = vmstat_read("nr_foll_pin_acquired");
	EXPECT_GT(acq0 + (long long)big_pages, acq1)
		TH_LOG("SIGKILL did not stop CONVERT_RANGE: all %lu pages were pinned (%lld)",
		       big_pages, acq1 - acq0);
	/* ...and whatever was, came back. */
	EXPECT_EQ(pins0, foll_pins_held())
		TH_LOG("%lld FOLL_PIN references left behind", foll_pins_held() - pins0);
	read_stats(_metadata, env->fd, &st1);
	EXPECT_EQ(st0.private_4k, st1.private_4k);
	EXPECT_EQ(st0.private_2m, st1.private_2m);
	EXPECT_EQ(st0.leaked_pages, st1.leaked_pages);
	EXPECT_EQ(st0.failures, st1.failures);
	if (env->debugfs) {
		rmp1 = read_text(SNP_DEBUGFS_RMP);
		ASSERT_NE(NULL, rmp0);
		ASSERT_NE(NULL, rmp1);
		EXPECT_STREQ(rmp0, rmp1) TH_LOG("RMP entries of the killed process remain");
	}
	expect_no_lockup(_metadata, seq0, "conversion killed");
	free(rmp0);
	free(rmp1);
	close(go[1]);
}

/*
 * The contender of close_without_lockup: through a file of its own, makes
 * one page of its own private and shared again from when it is told to go
 * until it is told to stop, noting when each conversion ended and the
 * longest it took.  Outside that window it holds no page private, so that
 * the test's counts before and after are exact.
 */
static int contend(struct shared *sh)
{
	char *page = map_pages(1);
	int fd = snp_open(), ret;
	double t0, t1;

	if (fd < 0 || !page) {
		sh->err = fd < 0 ? fd : -ENOMEM;
		return 1;
	}
	SET(sh->ready);
	while (!IS_SET(sh->go))
		usleep(1000);
	while (!IS_SET(sh->stop)) {
		t0 = now();
		ret = snp_make_private(fd, page, 0x7000000, 2, 0);
		if (!ret)
			ret = snp_make_shared(fd, page, 0);
		t1 = now();
		if (ret) {
			sh->err = ret;
			return 1;
		}
		sh->op_end[sh->ops % OP_RING] = t1;
		__atomic_store_n(&sh->ops, sh->ops + 1, __ATOMIC_RELEASE);
		if (t1 - t0 > sh->longest)
			sh->longest = t1 - t0;
	}
	return 0;
}

TEST_F_TIMEOUT(big, close_without_lockup, 300)
{
	struct shared *sh = self->sh;
	struct snp_host_stats st0, st1;
	long long pins0, seq0, seq1, vm_pin0, during = 0, i;
	struct knob *k;
	double t0, t1, t2;
	char *rmp0 = NULL, *rmp1 = NULL, *p;
	int fd, ret, status;
	__u64 done = 0;
	pid_t pid;

	self->knob[0] = (struct knob){ .path = WATCHDOG_THRESH, .want = slowdown };
	self->knob[1] = (struct knob){ .path = HUNG_TASK_TIMEOUT,
				       .want = 2 * slowdown };
	if (access(WATCHDOG_THRESH, W_OK) && access(HUNG_TASK_TIMEOUT, W_OK))
		SKIP(return,
		     "no %s nor %s: the kernel has neither CONFIG_SOFTLOCKUP_DETECTOR nor CONFIG_DETECT_HUNG_TASK",
		     WATCHDOG_THRESH, HUNG_TASK_TIMEOUT);
	if (access(WATCHDOG_THRESH, W_OK))
		TH_LOG("no %s (CONFIG_SOFTLOCKUP_DETECTOR=n): soft lockups go unseen",
		       WATCHDOG_THRESH);
	if (access(HUNG_TASK_TIMEOUT, W_OK))
		TH_LOG("no %s (CONFIG_DETECT_HUNG_TASK=n): hung tasks go unseen",
		       HUNG_TASK_TIMEOUT);

	/* Forked before any file is open: none of them holds ours. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(contend(sh));
	self->child[0] = pid;
	ret = knobs_set(self->knob, 2, &self->guard_fd, &self->guard);
	ASSERT_EQ(0, ret) TH_LOG("setting the watchdogs: %s", strerror(-ret));

	self->env.fd = snp_open();
	ASSERT_LE(0, self->env.fd);
	read_stats(_metadata, self->env.fd, &st0);
	pins0 = foll_pins_held();
	vm_pin0 = proc_status_kb(0, "VmPin");
	if (self->env.debugfs)
		rmp0 = read_text(SNP_DEBUGFS_RMP);
	p = map_pages(big_pages);
	ASSERT_NE(NULL, p);

	seq0 = kmsg_last_seq();
	fd = snp_open();
	ASSERT_LE(0, fd);
	t0 = now();
	ret = snp_convert_range(fd, p, big_pages, 0x100000000ULL, 3,
				SNP_HOST_LEVEL_4K, true, &done);
	t1 = now();
	TH_LOG("%lu MiB made private in %.2f s", BIG_MIB, t1 - t0);
	EXPECT_EQ(0, ret) TH_LOG("CONVERT_RANGE: %s after %llu pages", strerror(-ret), done);
	EXPECT_EQ(pins0 + (long long)done, foll_pins_held());
	expect_no_lockup(_metadata, seq0, "converting the range");
	seq1 = kmsg_last_seq();

	/* The contender runs through the close. */
	while (!IS_SET(sh->ready) && !sh->err)
		usleep(1000);
	ASSERT_EQ(0, sh->err) TH_LOG("contender: %s", strerror(-sh->err));
	SET(sh->go);
	while (!__atomic_load_n(&sh->ops, __ATOMIC_ACQUIRE) && !sh->err)
		usleep(1000);
	t1 = now();
	ASSERT_EQ(0, close(fd));
	t2 = now();
	SET(sh->stop);
	status = wait_for(pid, 60);
	self->child[0] = 0;
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("contender: %s", strerror(-sh->err));
	/*
	 * The close returns its pages in batches and lets others in between:
	 * none of the contender's conversions may wait for most of it.  A
	 * close of a quarter of a second or more spans many batches (the test
	 * VM takes about a second); below that nothing can be told.  The
	 * contender's conversions that ended inside the close are counted
	 * for the log: the clock of a busy host makes them a weaker measure.
	 */
	for (i = sh->ops > OP_RING ? sh->ops - OP_RING : 0; i < sh->ops; i++) {
		double end = sh->op_end[i % OP_RING];

		during += end > t1 && end < t2;
	}
	TH_LOG("closing %lu MiB private took %.2f s", BIG_MIB, t2 - t1);
	TH_LOG("the contender converted %lld times meanwhile; its longest conversion took %.3f s",
	       during, sh->longest);
	if (t2 - t1 >= 0.25)
		EXPECT_TRUE(sh->longest < 0.5 * (t2 - t1))
			TH_LOG("another file's conversion waited %.3f s of the %.2f s close: %s",
			       sh->longest, t2 - t1,
			       "the close holds the module-wide locks for the whole walk");

	/* Reports of a blocked task come at the detector's next look. */
	if (self->knob[1].present)
		sleep(self->knob[1].want + 1);
	expect_no_lockup(_metadata, seq1, "closing a file holding the range");

	EXPECT_EQ(pins0, foll_pins_held()) TH_LOG("pins left after the close");
	EXPECT_EQ(vm_pin0, proc_status_kb(0, "VmPin"));
	read_stats(_metadata, self->env.fd, &st1);
	EXPECT_EQ(st0.private_4k, st1.private_4k);
	EXPECT_EQ(st0.private_2m, st1.private_2m);
	EXPECT_EQ(st0.leaked_pages, st1.leaked_pages);
	if (self->env.debugfs) {
		rmp1 = read_text(SNP_DEBUGFS_RMP);
		ASSERT_NE(NULL, rmp0);
		ASSERT_NE(NULL, rmp1);
		EXPECT_STREQ(rmp0, rmp1) TH_LOG("RMP entries remain after the close");
	}
	free(rmp0);
	free(rmp1);
	munmap(p, big_pages * SZ_4K);

	/* The teardown does it again, and the guard after it. */
	knobs_restore(self->knob, 2);
	for (k = self->knob; k < self->knob + 2; k++) {
		if (k->present)
			EXPECT_EQ(k->old, read_ll(k->path))
				TH_LOG("%s not restored", k->path);
	}
}

TEST_HARNESS_MAIN
