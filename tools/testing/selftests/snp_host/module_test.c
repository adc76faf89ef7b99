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
#include "snp_host_util.h"

TEST(module_is_live)
{
	char state[32] = "";
	FILE *f;

	/* Built in, it is live from boot on: its device is the proof. */
	if (snp_builtin()) {
		EXPECT_EQ(0, access(SNP_DEV, F_OK)) TH_LOG("built in, but no %s", SNP_DEV);
		return;
	}
	f = fopen("/sys/module/snp_host/initstate", "r");
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
	bool snp = cpu_has_flag("sev_snp");
	FILE *f;

	ASSERT_EQ(1, kmsg_find("snp_host: using the ", msg, sizeof(msg)))
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

/*
 * The test VM loads the module without parameters: sysfs must show the
 * default.  Built in, the driver takes snp_host.backend= from the kernel
 * command line (the in-tree VM passes one), and sysfs must show that.
 */
TEST(backend_parameter)
{
	char val[32] = "", want[40] = "auto\n";
	char *cmdline = read_text("/proc/cmdline");
	FILE *f = fopen("/sys/module/snp_host/parameters/backend", "r");
	const char *key = "snp_host.backend=", *arg;

	ASSERT_NE(NULL, f) TH_LOG("no backend parameter in sysfs");
	ASSERT_NE(NULL, fgets(val, sizeof(val), f));
	fclose(f);
	ASSERT_NE(NULL, cmdline);
	arg = strstr(cmdline, key);
	if (arg && snp_builtin()) {
		arg += strlen(key);
		snprintf(want, sizeof(want), "%.*s\n", (int)strcspn(arg, "\n "), arg);
	}
	free(cmdline);
	EXPECT_STREQ(want, val);
}

TEST_HARNESS_MAIN
