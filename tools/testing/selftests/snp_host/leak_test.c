// SPDX-License-Identifier: GPL-2.0
/*
 * A page the RMP refuses to give back must be leaked, never freed.
 *
 * The host cannot make an immutable page shared again (RMPUPDATE answers
 * FAIL_PERMISSION; only firmware can reclaim it), so it stands for every
 * page whose RMP state cannot be restored.  The module must answer EIO,
 * count and report the page, keep it assigned, and keep it pinned so it
 * never returns to the allocator, even after the process that owned it is
 * gone.  The pin is checked through /proc/vmstat, the entry through
 * debugfs, the report through the kernel log.
 *
 * Emulated backend only: on SNP hardware each run would leak real memory.
 */
#define _GNU_SOURCE
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "snp_host_util.h"

/* The child: assign an immutable page, fail to return it, report its PFN, exit. */
static int leak_one_page(int out)
{
	char *page = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct snp_host_page p;
	int fd = snp_open();

	if (page == MAP_FAILED || fd < 0)
		return 10;
	page[0] = 1;
	p = snp_page(page, 0x7000, 1, 0);
	p.immutable = 1;
	if (snp_ioctl(fd, SNP_HOST_MAKE_PRIVATE, &p))
		return 11;
	if (write(out, &p.pfn, sizeof(p.pfn)) != sizeof(p.pfn))
		return 12;
	/* The RMP refuses: EIO, and the file no longer owns the page. */
	if (snp_make_shared(fd, page, 0) != -EIO)
		return 13;
	if (snp_make_shared(fd, page, 0) != -ENOENT)
		return 14;
	return 0;
}

TEST(immutable_page_is_leaked_not_freed)
{
	struct snp_host_stats before, after;
	struct snp_host_status status;
	char line[160], *dump;
	long long pins_before;
	int fd, pipefd[2], wstatus;
	__u64 pfn = 0;
	pid_t child;

	fd = snp_open();
	if (fd < 0)
		SKIP(return, "cannot open " SNP_DEV ": %s", strerror(-fd));
	ASSERT_EQ(0, snp_get_status(fd, &status));
	if (status.backend != SNP_HOST_BACKEND_EMULATED)
		SKIP(return, "emulated backend only: this would leak real memory");
	ASSERT_EQ(0, snp_get_stats(fd, &before));
	close(fd);
	pins_before = foll_pins_held();

	ASSERT_EQ(0, pipe(pipefd));
	child = fork();
	ASSERT_GE(child, 0);
	if (child == 0) {
		close(pipefd[0]);
		_exit(leak_one_page(pipefd[1]));
	}
	close(pipefd[1]);
	ASSERT_EQ((ssize_t)sizeof(pfn), read(pipefd[0], &pfn, sizeof(pfn)));
	close(pipefd[0]);
	ASSERT_EQ(child, waitpid(child, &wstatus, 0));
	ASSERT_TRUE(WIFEXITED(wstatus));
	ASSERT_EQ(0, WEXITSTATUS(wstatus));

	fd = snp_open();
	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, snp_get_stats(fd, &after));
	close(fd);
	EXPECT_EQ(before.leaked_pages + 1, after.leaked_pages);
	EXPECT_EQ(before.failures + 1, after.failures);
	EXPECT_EQ(before.private_4k, after.private_4k);
	/* Its process is gone, yet the page is still pinned: never freed. */
	EXPECT_EQ(pins_before + 1, foll_pins_held());

	/* The entry stays assigned and immutable, and the module still lists it. */
	snprintf(line, sizeof(line), "%#llx 4K assigned=1 asid=1 gpa=0x7000 immutable=1",
		 (unsigned long long)pfn);
	dump = read_text(SNP_DEBUGFS_RMP);
	ASSERT_NE(NULL, dump);
	EXPECT_NE(NULL, strstr(dump, line)) TH_LOG("no \"%s\" in:\n%s", line, dump);
	free(dump);

	EXPECT_EQ(1, kmsg_find("the RMP refused to return it to the host", NULL, 0));
}

TEST_HARNESS_MAIN
