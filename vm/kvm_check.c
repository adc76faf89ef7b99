// SPDX-License-Identifier: GPL-2.0
/*
 * Runs one upstream KVM selftest in the test VM and checks, through the
 * module's counters and /proc/meminfo, what it did to the module as the
 * kernel's RMP provider (issue 10):
 *
 *	kvm_check [-t <seconds> | -k <seconds>] <conversions|none> <test program> [arguments]
 *
 * With snp_host loaded (it provides the kernel's RMP operations:
 * SNP_HOST_FLAG_KVM), the test must pass and, once it has exited, nothing
 * it made private may still be private, nothing may have leaked and no
 * operation may have failed; a "conversions" test must have made pages
 * private through the module and had every one of them returned; under
 * directmap=coalesce, DirectMap4k/2M/1G must be back to their values
 * before the test.  Without the module (the baseline run) the test must
 * pass, and the DirectMap lines are only reported.
 *
 * A test still running after -t seconds (default: none) fails: kvm_check
 * prints the state and wait channel of each of its threads, kills its
 * process group and checks the counters as above, so that a hung test
 * leaves nothing behind for the next one.  With -k <seconds> instead the
 * kill is the point: the test is killed after that long, at a moment it has
 * pages private (waiting up to three times as long for one: a VMM killed in
 * the middle of its conversions), and passes if everything it made private
 * came back when its files closed.
 *
 * Exit status: 0 pass, 4 skip (the test skipped), 1 fail.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/snp_host.h>

#define KSFT_SKIP 4

struct directmap {
	unsigned long long k4, m2, g1;
	/* /proc/vmstat: 2M splits and collapses by anyone, the module or not. */
	unsigned long long splits, collapses;
};

static int read_directmap(struct directmap *d)
{
	char line[128];
	FILE *f = fopen("/proc/meminfo", "r");
	int found = 0;

	if (!f)
		return -errno;
	memset(d, 0, sizeof(*d));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "DirectMap4k: %llu kB", &d->k4) == 1 ||
		    sscanf(line, "DirectMap2M: %llu kB", &d->m2) == 1 ||
		    sscanf(line, "DirectMap1G: %llu kB", &d->g1) == 1)
			found++;
	}
	fclose(f);
	f = fopen("/proc/vmstat", "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "direct_map_level2_splits %llu", &d->splits) == 1)
				continue;
			if (sscanf(line, "direct_map_level2_collapses %llu", &d->collapses) == 1)
				continue;
		}
		fclose(f);
	}
	return found >= 2 ? 0 : -ENOENT;
}

static bool same_directmap(const struct directmap *a, const struct directmap *b)
{
	return a->k4 == b->k4 && a->m2 == b->m2 && a->g1 == b->g1;
}

static void print_directmap(const struct directmap *a, const struct directmap *b)
{
	printf("DirectMap4k %llu -> %llu kB, 2M %llu -> %llu kB, 1G %llu -> %llu kB\n",
	       a->k4, b->k4, a->m2, b->m2, a->g1, b->g1);
	printf("vmstat: 2M splits +%llu, collapses +%llu\n",
	       b->splits - a->splits, b->collapses - a->collapses);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The kernel changes the direct map for its own reasons too: a module just
 * loaded has its init sections freed by a work item after an RCU grace
 * period, and resetting their permissions splits the 2M region around them
 * (vmstat counted such a split inside a test started right after insmod).
 * Waits, up to 5 s, until vmstat's 2M splits have not moved for 500 ms, so
 * that the direct map measured before the test is the one the module found.
 */
static void settle(void)
{
	struct directmap d;
	unsigned long long last = ~0ULL;
	int tries, quiet = 0;

	for (tries = 0; tries < 50 && quiet < 5; tries++) {
		if (read_directmap(&d))
			return;
		quiet = d.splits == last ? quiet + 1 : 0;
		last = d.splits;
		sleep_ms(100);
	}
}

static int get_kvm_stats(int fd, struct snp_host_kvm_stats *s)
{
	return ioctl(fd, SNP_HOST_GET_KVM_STATS, s) ? -errno : 0;
}

/* Opens /proc/<pid>/task/<tid>/<name> for reading, or returns NULL. */
static FILE *task_file(pid_t pid, const char *tid, const char *name)
{
	char path[320];

	snprintf(path, sizeof(path), "/proc/%d/task/%s/%s", pid, tid, name);
	return fopen(path, "r");
}

/* Prints each thread of process <pid>: its state and where it waits. */
static void print_threads(pid_t pid)
{
	char path[64], buf[256], *state;
	unsigned long long utime, stime;
	struct dirent *e;
	DIR *dir;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return;
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		f = task_file(pid, e->d_name, "stat");
		if (!f)
			continue;
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
		/* The state follows the command, which is in parentheses. */
		state = strrchr(buf, ')');
		state = state && state[1] ? state + 2 : "?";
		printf("  thread %s: state %c", e->d_name, *state);
		/* Then ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt. */
		if (sscanf(state, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			   &utime, &stime) == 2)
			printf(", user %llu system %llu ticks", utime, stime);
		f = task_file(pid, e->d_name, "syscall");
		if (f) {
			if (fgets(buf, sizeof(buf), f)) {
				buf[strcspn(buf, "\n")] = 0;
				printf(", syscall %s", buf);
			}
			fclose(f);
		}
		f = task_file(pid, e->d_name, "wchan");
		if (f) {
			if (fgets(buf, sizeof(buf), f))
				printf(", waits in %s", buf);
			fclose(f);
		}
		printf("\n");
		/* The kernel stack too, where the kernel keeps one (CONFIG_STACKTRACE). */
		f = task_file(pid, e->d_name, "stack");
		if (f) {
			while (fgets(buf, sizeof(buf), f))
				printf("    %s", buf);
			fclose(f);
		}
	}
	closedir(dir);
}

/* How long the test may run, and whether being killed then is a failure. */
struct limit {
	unsigned int seconds; /* 0: no limit */
	bool kill_expected;
};

/*
 * Runs the test in a process group of its own; returns its exit status, or
 * -1 if it did not exit by itself (killed by a signal, or by us at the
 * limit), or -2 if we killed it as asked (-k).  <fd>: /dev/snp_host, whose
 * count of private pages is printed at a kill, or -1.
 */
static int run(char **argv, struct limit limit, int fd)
{
	struct snp_host_kvm_stats k, before = { 0 };
	double start = now();
	bool killed = false;
	double elapsed;
	int status;
	pid_t pid, w;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("fork: %s\n", strerror(errno));
		return -1;
	}
	if (!pid) {
		setpgid(0, 0);
		/* Killed with us, should the VM's timeout kill kvm_check. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(argv[0], argv);
		printf("exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0) {
			printf("waitpid: %s\n", strerror(errno));
			return -1;
		}
		elapsed = now() - start;
		if (killed || !limit.seconds || elapsed <= limit.seconds) {
			sleep_ms(50);
			continue;
		}
		/*
		 * A kill on purpose waits, up to three times as long, for a
		 * moment the test has pages private: its conversions come and go.
		 */
		if (limit.kill_expected && elapsed < 3 * limit.seconds && fd >= 0 &&
		    !get_kvm_stats(fd, &k) && !k.private_4k_now) {
			sleep_ms(50);
			continue;
		}
		if (limit.kill_expected) {
			printf("killing %s after %.1f s, as asked", argv[0], elapsed);
			if (fd >= 0 && !get_kvm_stats(fd, &k))
				printf(", with %llu pages private", k.private_4k_now);
			printf("\n");
		} else {
			printf("FAIL: %s still running after %u s; its threads:\n",
			       argv[0], limit.seconds);
			print_threads(pid);
			/* Whether it spins, and where: the same a second later. */
			if (fd >= 0 && !get_kvm_stats(fd, &k))
				before = k;
			sleep_ms(1000);
			printf("a second later:\n");
			print_threads(pid);
			if (fd >= 0 && !get_kvm_stats(fd, &k)) {
				printf("in that second: make_private +%llu, make_shared +%llu,",
				       k.make_private - before.make_private,
				       k.make_shared - before.make_shared);
				printf(" psmash +%llu, failures +%llu\n",
				       k.psmash - before.psmash, k.failures - before.failures);
			}
		}
		kill(-pid, SIGKILL);
		killed = true;
		sleep_ms(50);
	}
	printf("%s ran for %.2f s\n", argv[0], now() - start);
	if (killed && limit.kill_expected && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		return -2;
	if (WIFSIGNALED(status)) {
		printf("%s killed by signal %d\n", argv[0], WTERMSIG(status));
		return -1;
	}
	return WEXITSTATUS(status);
}

static int get_stats(int fd, struct snp_host_stats *s)
{
	return ioctl(fd, SNP_HOST_GET_STATS, s) ? -errno : 0;
}

int main(int argc, char **argv)
{
	struct snp_host_kvm_stats k0, k1;
	struct snp_host_stats s0, s1;
	struct snp_host_status st;
	struct directmap d0, d1;
	bool conversions, coalesce;
	struct limit limit = { 0 };
	int fd, rc, tries, bad = 0;
	char *end;

	if (argc > 2 && (!strcmp(argv[1], "-t") || !strcmp(argv[1], "-k"))) {
		limit.kill_expected = argv[1][1] == 'k';
		errno = 0;
		limit.seconds = strtoul(argv[2], &end, 10);
		if (errno || end == argv[2] || *end || !limit.seconds) {
			printf("%s wants a number of seconds, not %s\n", argv[1], argv[2]);
			return 1;
		}
		argv += 2;
		argc -= 2;
	}
	if (argc < 3 || (strcmp(argv[1], "conversions") && strcmp(argv[1], "none"))) {
		printf("usage: %s [-t <seconds> | -k <seconds>] <conversions|none> %s\n",
		       argv[0], "<test program> [arguments]");
		return 1;
	}
	conversions = !strcmp(argv[1], "conversions");
	settle();
	if (read_directmap(&d0)) {
		printf("no DirectMap lines in /proc/meminfo\n");
		return 1;
	}

	fd = open("/dev/snp_host", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		/* The baseline: the same test, with Linux's own RMP operations. */
		rc = run(argv + 2, limit, -1);
		read_directmap(&d1);
		printf("baseline (no module): exit %d\n", rc);
		print_directmap(&d0, &d1);
		return rc == 0 || rc == -2 ? 0 : rc == KSFT_SKIP ? KSFT_SKIP : 1;
	}
	if (ioctl(fd, SNP_HOST_GET_STATUS, &st)) {
		printf("GET_STATUS: %s\n", strerror(errno));
		return 1;
	}
	if (!(st.flags & SNP_HOST_FLAG_KVM)) {
		printf("snp_host does not provide the kernel's RMP operations (flags %#x)\n",
		       st.flags);
		return 1;
	}
	coalesce = st.directmap_policy == SNP_HOST_DIRECTMAP_COALESCE;
	rc = get_kvm_stats(fd, &k0);
	if (!rc)
		rc = get_stats(fd, &s0);
	if (rc) {
		printf("GET_KVM_STATS/GET_STATS: %s\n", strerror(-rc));
		return 1;
	}

	rc = run(argv + 2, limit, fd);
	if (rc == KSFT_SKIP) {
		printf("%s skipped\n", argv[2]);
		return KSFT_SKIP;
	}
	if (rc > 0) {
		printf("FAIL: %s exited with %d\n", argv[2], rc);
		bad = 1;
	} else if (rc == -1) {
		printf("FAIL: %s did not exit by itself\n", argv[2]);
		bad = 1;
	}

	/* The test's pages go back as its files close; give stragglers 5 s. */
	for (tries = 0; tries < 50; tries++) {
		if (get_kvm_stats(fd, &k1) || get_stats(fd, &s1) || read_directmap(&d1))
			break;
		if (k1.private_4k_now == 0 && (!coalesce || same_directmap(&d0, &d1)))
			break;
		sleep_ms(100);
	}
	printf("kvm: make_private +%llu, make_shared +%llu, psmash +%llu, lookups +%llu\n",
	       k1.make_private - k0.make_private, k1.make_shared - k0.make_shared,
	       k1.psmash - k0.psmash, k1.lookups - k0.lookups);
	printf("kvm: failures +%llu, leaked +%llu, private now %llu\n",
	       k1.failures - k0.failures, k1.leaked_pages - k0.leaked_pages,
	       k1.private_4k_now);
	print_directmap(&d0, &d1);
	printf("direct map: 2M splits +%llu, merges +%llu, TLB flushes +%llu, pages out %llu\n",
	       s1.dm_splits_2m - s0.dm_splits_2m, s1.dm_merges_2m - s0.dm_merges_2m,
	       s1.tlb_flushes - s0.tlb_flushes, s1.dm_unmapped_pages);

	if (k1.private_4k_now) {
		printf("FAIL: %llu pages are still private\n", k1.private_4k_now);
		bad = 1;
	}
	if (k1.leaked_pages != k0.leaked_pages) {
		printf("FAIL: %llu pages leaked\n", k1.leaked_pages - k0.leaked_pages);
		bad = 1;
	}
	if (k1.failures != k0.failures) {
		printf("FAIL: %llu operations failed\n", k1.failures - k0.failures);
		bad = 1;
	}
	if (conversions && k1.make_private == k0.make_private) {
		printf("FAIL: no page was made private through the module\n");
		bad = 1;
	}
	if (k1.make_private - k0.make_private != k1.make_shared - k0.make_shared) {
		printf("FAIL: %llu pages made private, %llu returned\n",
		       k1.make_private - k0.make_private, k1.make_shared - k0.make_shared);
		bad = 1;
	}
	if (s1.dm_unmapped_pages != s0.dm_unmapped_pages) {
		printf("FAIL: %llu pages out of the direct map before, %llu after\n",
		       s0.dm_unmapped_pages, s1.dm_unmapped_pages);
		bad = 1;
	}
	if (coalesce && !same_directmap(&d0, &d1)) {
		printf("FAIL: the direct map did not merge back (directmap=coalesce)\n");
		bad = 1;
	}
	close(fd);
	return bad;
}
