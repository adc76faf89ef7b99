// SPDX-License-Identifier: GPL-2.0
/*
 * The VM test's independent view of the module: what the ioctls of
 * include/uapi/linux/snp_host.h report, printed as "path value" lines in the
 * paths of snp-host's JSON (flattened by vm-test.sh), so that the test can
 * compare the tool's output with the module's own numbers without trusting
 * the tool's ABI code.
 *
 *   abi_probe status    backend, flags, rmp_base, rmp_end, max_pfn, directmap_policy
 *   abi_probe stats     module.*, faults.*, kvm.* counters
 *   abi_probe hold N    makes N 4K pages of its own private (ASID 1, GPA
 *                       0x100000 + i * 4K), prints "pfn 0x..." per page and
 *                       "ready", then waits to be killed, which returns them
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/snp_host.h>

#define PAGE 4096UL

static int dev;

static void die(const char *what)
{
	fprintf(stderr, "abi_probe: %s: %s\n", what, strerror(errno));
	exit(1);
}

#define SHOW(prefix, s, f) \
	printf("%s%s %llu\n", prefix, #f, (unsigned long long)(s).f)

static void status(void)
{
	struct snp_host_status s;

	if (ioctl(dev, SNP_HOST_GET_STATUS, &s))
		die("SNP_HOST_GET_STATUS");
	SHOW("", s, backend);
	SHOW("", s, flags);
	SHOW("", s, rmp_base);
	SHOW("", s, rmp_end);
	SHOW("", s, max_pfn);
	SHOW("", s, directmap_policy);
}

static void stats(void)
{
	struct snp_host_stats s;
	struct snp_host_fault_stats f;
	struct snp_host_kvm_stats k;

	if (ioctl(dev, SNP_HOST_GET_STATS, &s))
		die("SNP_HOST_GET_STATS");
	SHOW("module.", s, private_4k);
	SHOW("module.", s, private_2m);
	SHOW("module.", s, make_private);
	SHOW("module.", s, make_shared);
	SHOW("module.", s, psmash);
	SHOW("module.", s, transient_retries);
	SHOW("module.", s, failures);
	SHOW("module.", s, leaked_pages);
	SHOW("module.", s, dm_splits_2m);
	SHOW("module.", s, dm_splits_1g);
	SHOW("module.", s, dm_merges_2m);
	SHOW("module.", s, dm_merges_1g);
	SHOW("module.", s, dm_unmapped_pages);
	SHOW("module.", s, tlb_flushes);
	SHOW("module.", s, dm_cpa_calls);
	SHOW("module.", s, dm_walks);
	if (ioctl(dev, SNP_HOST_GET_FAULT_STATS, &f))
		die("SNP_HOST_GET_FAULT_STATS");
	SHOW("faults.", f, user_faults);
	SHOW("faults.", f, thp_splits);
	SHOW("faults.", f, sigbus);
	SHOW("faults.", f, no_progress);
	SHOW("faults.", f, uaccess_refused);
	SHOW("faults.", f, gup_refused);
	SHOW("faults.", f, kernel_faults);
	if (ioctl(dev, SNP_HOST_GET_KVM_STATS, &k))
		die("SNP_HOST_GET_KVM_STATS");
	SHOW("kvm.", k, make_private);
	SHOW("kvm.", k, make_shared);
	SHOW("kvm.", k, psmash);
	SHOW("kvm.", k, lookups);
	SHOW("kvm.", k, leaked_pages);
	SHOW("kvm.", k, private_4k_now);
	SHOW("kvm.", k, failures);
}

static void hold(unsigned long n)
{
	struct snp_host_page p;
	unsigned long i;
	char *mem;

	mem = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	/* 4K pages of their own: no THP for the test to split. */
	madvise(mem, n * PAGE, MADV_NOHUGEPAGE);
	for (i = 0; i < n; i++) {
		mem[i * PAGE] = 1;
		memset(&p, 0, sizeof(p));
		p.hva = (unsigned long)(mem + i * PAGE);
		p.gpa = 0x100000 + i * PAGE;
		p.asid = 1;
		p.level = SNP_HOST_LEVEL_4K;
		if (ioctl(dev, SNP_HOST_MAKE_PRIVATE, &p))
			die("SNP_HOST_MAKE_PRIVATE");
		if (ioctl(dev, SNP_HOST_LOOKUP, &p))
			die("SNP_HOST_LOOKUP");
		printf("pfn 0x%llx gpa 0x%llx\n", (unsigned long long)p.pfn,
		       (unsigned long long)p.gpa);
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: abi_probe status|stats|hold N\n");
		return 2;
	}
	dev = open("/dev/snp_host", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		die("/dev/snp_host");
	if (!strcmp(argv[1], "status"))
		status();
	else if (!strcmp(argv[1], "stats"))
		stats();
	else if (!strcmp(argv[1], "hold") && argc == 3)
		hold(strtoul(argv[2], NULL, 0));
	else
		return 2;
	return 0;
}
