// SPDX-License-Identifier: GPL-2.0
/*
 * snp_host cannot be unloaded while a /dev/snp_host file is open.
 *
 * Each open file holds a reference on the module (the misc device's file
 * operations name it as their owner), which /sys/module/snp_host/refcnt
 * shows; delete_module(O_NONBLOCK) must then fail and leave the module live
 * and working.  In Linux 7.3 that failure is EWOULDBLOCK ("in use";
 * EBUSY means a module that is still initialising or already going), which
 * busybox and kmod rmmod report as "Resource temporarily unavailable".
 *
 * The test VM loads the module once, before every test, and unloads it
 * after the last (vm/init): so this test never unloads it.  If the module
 * does go away anyway, the test fails and loads it again from
 * $SNP_HOST_KO (default /lib/modules/snp_host.ko, where vm/init has it) so
 * that the tests after it still find it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "snp_host_util.h"

#define SNP_MODULE_REFCNT	SNP_MODULE_DIR "/refcnt"
#define SNP_MODULE_STATE	SNP_MODULE_DIR "/initstate"
#define DEFAULT_KO		"/lib/modules/snp_host.ko"

static int delete_module(const char *name, unsigned int flags)
{
	return syscall(SYS_delete_module, name, flags) ? -errno : 0;
}

static bool module_live(void)
{
	char *state = read_text(SNP_MODULE_STATE);
	bool live = state && !strcmp(state, "live\n");

	free(state);
	return live;
}

/* Loads the module again after a test unloaded it by mistake. */
static int reload_module(void)
{
	const char *ko = getenv("SNP_HOST_KO");
	int fd, ret;

	fd = open(ko ? ko : DEFAULT_KO, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, "", 0) ? -errno : 0;
	close(fd);
	return ret;
}

/*
 * Calls delete_module(O_NONBLOCK) and expects it to be refused because the
 * module is in use; puts the module back if it was not.  Never asks while
 * the refcount says nobody holds the module: with a file open that would
 * unload code the file still runs on.
 */
static void expect_unload_refused(struct __test_metadata *_metadata,
				  const char *what)
{
	long long refs = read_ll(SNP_MODULE_REFCNT);
	int ret;

	/* Not calling delete_module then: it would unload code under the file. */
	ASSERT_LT(0, refs)
		TH_LOG("%s: refcnt %lld: an open file holds no module reference",
		       what, refs);
	ret = delete_module("snp_host", O_NONBLOCK);
	if (!ret) {
		TH_LOG("%s: delete_module unloaded snp_host with a file open", what);
		ret = reload_module();
		TH_LOG("loading it again: %s", ret ? strerror(-ret) : "done");
		ASSERT_TRUE(false);
	}
	EXPECT_EQ(-EWOULDBLOCK, ret)
		TH_LOG("%s: delete_module failed with %s, want %s (module in use)",
		       what, strerror(-ret), strerror(EWOULDBLOCK));
	EXPECT_TRUE(module_live()) TH_LOG("%s: the module is not live", what);
	EXPECT_EQ(refs, read_ll(SNP_MODULE_REFCNT))
		TH_LOG("%s: the refused unload changed the refcount", what);
}

/* The module still answers through @fd and converts a page. */
static void expect_working(struct __test_metadata *_metadata, int fd)
{
	struct snp_host_status st;
	struct snp_host_page p;
	char *page = map_pages(1);

	ASSERT_NE(NULL, page);
	ASSERT_EQ(0, snp_get_status(fd, &st));
	ASSERT_EQ(0, snp_make_private(fd, page, 0x5000, 1, 0));
	ASSERT_EQ(0, snp_lookup(fd, page, &p));
	EXPECT_EQ(1U, p.assigned);
	EXPECT_EQ(pagemap_pfn(page), p.pfn);
	EXPECT_EQ(0, snp_make_shared(fd, page, 0));
	munmap(page, SZ_4K);
}

FIXTURE(unload)
{
	int fd;
	long long refs0;
};

FIXTURE_SETUP(unload)
{
	self->fd = -1;
	if (geteuid())
		SKIP(return, "needs root (delete_module, the device)");
	if (access(SNP_MODULE_DIR, F_OK))
		SKIP(return, "snp_host.ko is not loaded");
	if (snp_builtin())
		SKIP(return, "snp_host is built in (CONFIG_SNP_HOST=y): it cannot be unloaded");
	if (access(SNP_MODULE_REFCNT, R_OK))
		SKIP(return, "no %s (CONFIG_MODULE_UNLOAD=n)", SNP_MODULE_REFCNT);
	self->refs0 = read_ll(SNP_MODULE_REFCNT);
	self->fd = snp_open();
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", SNP_DEV, strerror(-self->fd));
}

FIXTURE_TEARDOWN(unload)
{
	if (self->fd >= 0)
		close(self->fd);
	/* Whatever happened, the module must be there for the next tests. */
	if (access(SNP_MODULE_DIR, F_OK))
		reload_module();
}

TEST_F(unload, refused_while_a_file_is_open)
{
	int fd2;

	EXPECT_LT(self->refs0, read_ll(SNP_MODULE_REFCNT))
		TH_LOG("an open file does not count in refcnt");
	expect_unload_refused(_metadata, "one file open");
	expect_working(_metadata, self->fd);

	/* A second file counts too, and closing one leaves the other's. */
	fd2 = snp_open();
	ASSERT_LE(0, fd2);
	EXPECT_EQ(self->refs0 + 2, read_ll(SNP_MODULE_REFCNT));
	close(self->fd);
	self->fd = fd2;
	EXPECT_EQ(self->refs0 + 1, read_ll(SNP_MODULE_REFCNT));
	expect_unload_refused(_metadata, "the second file open");
	expect_working(_metadata, self->fd);

	close(self->fd);
	self->fd = -1;
	EXPECT_EQ(self->refs0, read_ll(SNP_MODULE_REFCNT))
		TH_LOG("closing every file does not give the references back");
	EXPECT_TRUE(module_live());
}

/* Private pages do not change the answer, and the module still works after. */
TEST_F(unload, refused_while_pages_are_private)
{
	char *p = map_pages(8);
	long long pins0 = foll_pins_held();
	__u64 done = 0;
	int ret;

	ASSERT_NE(NULL, p);
	ret = snp_convert_range(self->fd, p, 8, 0x200000, 2, SNP_HOST_LEVEL_4K,
				true, &done);
	ASSERT_EQ(0, ret) TH_LOG("CONVERT_RANGE: %s", strerror(-ret));
	expect_unload_refused(_metadata, "8 pages private");
	EXPECT_EQ(pins0 + 8, foll_pins_held());
	expect_working(_metadata, self->fd);
	ASSERT_EQ(0, snp_convert_range(self->fd, p, 8, 0, 0, SNP_HOST_LEVEL_4K,
				       false, &done));
	EXPECT_EQ(pins0, foll_pins_held());
}

/*
 * The reference belongs to the file, not to the process that opened it: a
 * file that lives on in a child after the opener closed it still holds the
 * module.
 */
TEST_F(unload, refused_while_another_process_holds_the_file)
{
	int go[2], ready[2], status;
	char c = 0;
	pid_t pid;

	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(ready));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Holds the inherited file until told to go. */
		close(go[1]);
		close(ready[0]);
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		_exit(read(go[0], &c, 1) == 1 ? 0 : 2);
	}
	close(go[0]);
	close(ready[1]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	close(self->fd);
	self->fd = -1;
	EXPECT_EQ(self->refs0 + 1, read_ll(SNP_MODULE_REFCNT))
		TH_LOG("the child's file holds no reference");
	expect_unload_refused(_metadata, "the file open in a child only");
	ASSERT_EQ(1, write(go[1], &c, 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	EXPECT_EQ(self->refs0, read_ll(SNP_MODULE_REFCNT));
	EXPECT_TRUE(module_live());
	close(go[1]);
	close(ready[0]);
}

TEST_HARNESS_MAIN
