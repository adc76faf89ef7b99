// SPDX-License-Identifier: GPL-2.0
/*
 * What `make run` shows: snp_host converting memory of this process between
 * hypervisor-owned and guest-owned, told in words.  Not a test: the tests
 * are in tools/testing/selftests/snp_host/.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/snp_host.h>

#define SZ_2M (2UL << 20)

static int fd;

static int page_op(unsigned long cmd, void *hva, uint64_t gpa, uint8_t level,
		   struct snp_host_page *p)
{
	memset(p, 0, sizeof(*p));
	p->hva = (uintptr_t)hva;
	p->gpa = gpa;
	p->asid = 1;
	p->level = level;
	return ioctl(fd, cmd, p);
}

static void describe(const char *what, void *hva)
{
	struct snp_host_page p;

	if (page_op(SNP_HOST_LOOKUP, hva, 0, 0, &p)) {
		printf("    %s: lookup failed: %s\n", what, strerror(errno));
		return;
	}
	if (p.assigned)
		printf("    %s: pfn %#llx is guest-owned: ASID %u, GPA %#llx, %s entry\n", what,
		       (unsigned long long)p.pfn, p.asid, (unsigned long long)p.gpa,
		       p.level ? "2M" : "4K");
	else
		printf("    %s: pfn %#llx is hypervisor-owned\n", what,
		       (unsigned long long)p.pfn);
}

/* Returns the kB that /proc/meminfo reports for @name ("DirectMap4k"), or -1. */
static long long meminfo_kb(const char *name)
{
	char line[256];
	long long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, name, strlen(name)) && line[strlen(name)] == ':')
			kb = strtoll(line + strlen(name) + 1, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

static void stats(void)
{
	struct snp_host_stats s;

	if (ioctl(fd, SNP_HOST_GET_STATS, &s))
		return;
	printf("    kernel direct map: %lld kB at 4K, %lld kB at 2M, %lld kB at 1G; ",
	       meminfo_kb("DirectMap4k"), meminfo_kb("DirectMap2M"), meminfo_kb("DirectMap1G"));
	printf("the module split %llu 2M and %llu 1G mappings, ",
	       (unsigned long long)s.dm_splits_2m, (unsigned long long)s.dm_splits_1g);
	printf("merged %llu and %llu back, %llu flushes\n",
	       (unsigned long long)s.dm_merges_2m, (unsigned long long)s.dm_merges_1g,
	       (unsigned long long)s.tlb_flushes);
	printf("    now private: %llu 4K and %llu 2M pages; ",
	       (unsigned long long)s.private_4k, (unsigned long long)s.private_2m);
	printf("%llu conversions to private, %llu back, %llu PSMASH\n",
	       (unsigned long long)s.make_private, (unsigned long long)s.make_shared,
	       (unsigned long long)s.psmash);
}

/* Returns a 2M-aligned, touched, THP-backed (if the kernel allows) 2M region. */
static char *thp(void)
{
	char *raw = mmap(NULL, 2 * SZ_2M, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	if (raw == MAP_FAILED)
		return NULL;
	p = (char *)(((uintptr_t)raw + SZ_2M - 1) & ~(SZ_2M - 1));
	madvise(p, SZ_2M, MADV_HUGEPAGE);
	memset(p, 0x5a, SZ_2M);
	return p;
}

int main(void)
{
	struct snp_host_status st;
	struct snp_host_page p;
	char *a, *b;

	fd = open("/dev/snp_host", O_RDWR);
	if (fd < 0) {
		printf("Cannot open /dev/snp_host: %s\n", strerror(errno));
		return 1;
	}
	if (ioctl(fd, SNP_HOST_GET_STATUS, &st) == 0)
		printf("/dev/snp_host: %s RMP covering PFNs up to %#llx, direct map policy %s\n",
		       st.backend == SNP_HOST_BACKEND_HARDWARE ? "hardware" : "emulated",
		       (unsigned long long)st.max_pfn,
		       st.directmap_policy == SNP_HOST_DIRECTMAP_COALESCE ? "coalesce" :
		       st.directmap_policy == SNP_HOST_DIRECTMAP_SPLIT ? "split" : "perpage");
	stats();

	a = thp();
	b = thp();
	if (!a || !b)
		return 1;

	printf("One 4K page inside a 2M THP made private (what RMP faults on THPs come from):\n");
	if (page_op(SNP_HOST_MAKE_PRIVATE, a + 0x3000, 0x100000, 0, &p))
		printf("    failed: %s\n", strerror(errno));
	describe("that page", a + 0x3000);
	describe("its neighbour", a + 0x4000);
	stats();

	printf("A whole 2M THP made private as one 2M RMP entry, then split with PSMASH:\n");
	if (page_op(SNP_HOST_MAKE_PRIVATE, b, 0x40000000, 1, &p))
		printf("    2M conversion failed: %s (no THP here?)\n", strerror(errno));
	describe("a page inside it", b + 0x5000);
	if (page_op(SNP_HOST_PSMASH, b, 0, 0, &p) == 0) {
		describe("the same page after PSMASH", b + 0x5000);
		if (page_op(SNP_HOST_MAKE_SHARED, b + 0x5000, 0, 0, &p) == 0)
			describe("after making just it shared", b + 0x5000);
	}
	stats();

	printf("Closing /dev/snp_host returns every page it made private:\n");
	close(fd);
	fd = open("/dev/snp_host", O_RDWR);
	describe("the 4K page", a + 0x3000);
	describe("a page of the 2M one", b + 0x7000);
	stats();
	return 0;
}
