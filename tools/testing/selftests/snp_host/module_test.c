// SPDX-License-Identifier: GPL-2.0
/*
 * snp_host module selftests: the module is loaded, says which RMP backend it
 * uses, and its choice agrees with what the kernel reports about the CPU.
 *
 * The CPU's view comes from /proc/cpuinfo (the sev_snp flag is set by the
 * kernel only when SNP is usable) and the module's from its load message in
 * the kernel log, so a module that lies about its backend fails here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"

/* Returns 1 if @path contains @needle as a whole word on some line, 0 if not, -1 on error. */
static int file_has_word(const char *path, const char *needle)
{
	char line[4096];
	size_t len = strlen(needle);
	int found = 0;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return -1;
	while (!found && fgets(line, sizeof(line), f)) {
		char *p = line;

		while ((p = strstr(p, needle))) {
			int start = p == line || p[-1] == ' ' || p[-1] == '\t';
			int end = p[len] == ' ' || p[len] == '\n' || p[len] == '\0';

			if (start && end) {
				found = 1;
				break;
			}
			p += len;
		}
	}
	fclose(f);
	return found;
}

/*
 * Copies the last kernel-log record that contains @needle into @buf.
 * /dev/kmsg gives one record per read; O_NONBLOCK ends the walk at the tail.
 */
static int last_kmsg_with(const char *needle, char *buf, size_t size)
{
	char rec[8192];
	int fd, found = 0;
	ssize_t n;

	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	while ((n = read(fd, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
		if (n <= 0)
			continue;
		rec[n] = '\0';
		if (strstr(rec, needle)) {
			snprintf(buf, size, "%s", rec);
			found = 1;
		}
	}
	close(fd);
	return found;
}

TEST(module_is_live)
{
	char state[32] = "";
	FILE *f = fopen("/sys/module/snp_host/initstate", "r");

	ASSERT_NE(NULL, f) TH_LOG("snp_host is not loaded");
	ASSERT_NE(NULL, fgets(state, sizeof(state), f));
	fclose(f);
	EXPECT_STREQ("live\n", state);
}

/*
 * Without the sev_snp CPU flag the module must emulate.  When KVM itself runs
 * SNP guests (kvm_amd.sev_snp=Y) the host has SNP on and the module must use
 * the hardware.  In between (an SNP-capable CPU whose kernel did not enable
 * SNP) either answer can be right, but the message must name one of them.
 */
TEST(backend_matches_cpu)
{
	char msg[8192], kvm_snp[8] = "";
	int snp = file_has_word("/proc/cpuinfo", "sev_snp");
	FILE *f;

	ASSERT_GE(snp, 0);
	ASSERT_EQ(1, last_kmsg_with("snp_host: using the ", msg, sizeof(msg)))
		TH_LOG("no load message from snp_host in the kernel log");
	f = fopen("/sys/module/kvm_amd/parameters/sev_snp", "r");
	if (f) {
		if (!fgets(kvm_snp, sizeof(kvm_snp), f))
			kvm_snp[0] = '\0';
		fclose(f);
	}
	if (!snp) {
		EXPECT_NE(NULL, strstr(msg, "using the emulated RMP backend")) TH_LOG("%s", msg);
	} else if (kvm_snp[0] == 'Y') {
		EXPECT_NE(NULL, strstr(msg, "using the hardware RMP backend")) TH_LOG("%s", msg);
	} else {
		EXPECT_TRUE(strstr(msg, "using the hardware RMP backend") ||
			    strstr(msg, "using the emulated RMP backend")) TH_LOG("%s", msg);
	}
}

/* The test VM loads the module without parameters: sysfs must show the default. */
TEST(backend_parameter)
{
	char val[32] = "";
	FILE *f = fopen("/sys/module/snp_host/parameters/backend", "r");

	ASSERT_NE(NULL, f) TH_LOG("no backend parameter in sysfs");
	ASSERT_NE(NULL, fgets(val, sizeof(val), f));
	fclose(f);
	EXPECT_STREQ("auto\n", val);
}

TEST_HARNESS_MAIN
