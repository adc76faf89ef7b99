/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers of the snp_host selftests: thin wrappers of the /dev/snp_host
 * ioctls, and readers of the stable user interfaces (pagemap, kpageflags,
 * smaps, vmstat, meminfo, /proc/PID/status, the kernel log, debugfs)
 * through which the tests check the module's answers instead of trusting
 * them.
 *
 * Nothing here knows about the test harness: every helper returns a value
 * or a negative errno and leaves the judging to the tests.
 */
#ifndef SNP_HOST_UTIL_H
#define SNP_HOST_UTIL_H

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <linux/capability.h>
#include <linux/kernel-page-flags.h>
#include <linux/types.h>

#include <linux/snp_host.h>

#define SNP_DEV			"/dev/snp_host"
#define SNP_MODULE_DIR		"/sys/module/snp_host"
#define DEBUGFS_ROOT		"/sys/kernel/debug"
#define SNP_DEBUGFS		DEBUGFS_ROOT "/snp_host"
#define SNP_DEBUGFS_STATUS	SNP_DEBUGFS "/status"
#define SNP_DEBUGFS_RMP		SNP_DEBUGFS "/rmp"
#define SNP_DEBUGFS_LOOKUP	SNP_DEBUGFS "/lookup"
#define SNP_DEBUGFS_FAULTS	SNP_DEBUGFS "/faults"	/* the last RMP fault decisions */
#define SNP_DEBUGFS_KWRITE	SNP_DEBUGFS "/kwrite"	/* a kernel write to a private PFN */
#define SNP_DEBUGFS_FORCE_RETRY	SNP_DEBUGFS "/force_retry"	/* optional: decide RETRY */
#define THP_ENABLED		"/sys/kernel/mm/transparent_hugepage/enabled"
#define NR_HUGEPAGES		"/proc/sys/vm/nr_hugepages"

#define SZ_4K			4096UL
#define SZ_2M			(2UL << 20)
#define PAGES_PER_2M		512

#define PM_PRESENT		0x8000000000000000ULL
#define PM_PFN_MASK		((1ULL << 55) - 1)

#ifndef DEBUGFS_MAGIC
#define DEBUGFS_MAGIC		0x64626720
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif

/* Returns 0 or the negative errno of the ioctl. */
static inline int snp_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

static inline struct snp_host_page snp_page(void *hva, __u64 gpa, __u32 asid,
					    __u8 level)
{
	struct snp_host_page p;

	memset(&p, 0, sizeof(p));
	p.hva = (unsigned long)hva;
	p.gpa = gpa;
	p.asid = asid;
	p.level = level;
	return p;
}

static inline int snp_make_private(int fd, void *hva, __u64 gpa, __u32 asid,
				   __u8 level)
{
	struct snp_host_page p = snp_page(hva, gpa, asid, level);

	return snp_ioctl(fd, SNP_HOST_MAKE_PRIVATE, &p);
}

static inline int snp_make_shared(int fd, void *hva, __u8 level)
{
	struct snp_host_page p = snp_page(hva, 0, 0, level);

	return snp_ioctl(fd, SNP_HOST_MAKE_SHARED, &p);
}

/* PSMASH takes the 2M page it splits, so it is described at level 1. */
static inline int snp_psmash(int fd, void *hva)
{
	struct snp_host_page p = snp_page(hva, 0, 0, SNP_HOST_LEVEL_2M);

	return snp_ioctl(fd, SNP_HOST_PSMASH, &p);
}

static inline int snp_lookup(int fd, void *hva, struct snp_host_page *out)
{
	*out = snp_page(hva, 0, 0, 0);
	return snp_ioctl(fd, SNP_HOST_LOOKUP, out);
}

static inline int snp_get_stats(int fd, struct snp_host_stats *st)
{
	memset(st, 0, sizeof(*st));
	return snp_ioctl(fd, SNP_HOST_GET_STATS, st);
}

static inline int snp_get_status(int fd, struct snp_host_status *st)
{
	memset(st, 0, sizeof(*st));
	return snp_ioctl(fd, SNP_HOST_GET_STATUS, st);
}

static inline int snp_get_fault_stats(int fd, struct snp_host_fault_stats *st)
{
	memset(st, 0, sizeof(*st));
	return snp_ioctl(fd, SNP_HOST_GET_FAULT_STATS, st);
}

/*
 * CONVERT_RANGE of @npages pages of @level from @hva; page i goes to
 * @gpa + i * page size when @to_private.  *@done (if not NULL) gets what the
 * module says it converted, on failure too.
 */
static inline int snp_convert_range(int fd, void *hva, __u64 npages,
				    __u64 gpa, __u32 asid, __u8 level,
				    bool to_private, __u64 *done)
{
	struct snp_host_range r;
	int ret;

	memset(&r, 0, sizeof(r));
	r.hva = (unsigned long)hva;
	r.npages = npages;
	r.gpa = gpa;
	r.asid = asid;
	r.level = level;
	r.to_private = to_private;
	ret = snp_ioctl(fd, SNP_HOST_CONVERT_RANGE, &r);
	if (done)
		*done = r.done;
	return ret;
}

static inline int snp_open(void)
{
	int fd = open(SNP_DEV, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/*
 * Fills @pfns with the PFNs behind @n consecutive 4K pages from @addr, as
 * /proc/self/pagemap reports them (0 for a page that is not present, and for
 * every page when the caller lacks CAP_SYS_ADMIN).
 */
static inline int pagemap_pfns(const void *addr, size_t n, __u64 *pfns)
{
	off_t off = (unsigned long)addr / SZ_4K * sizeof(__u64);
	size_t len = n * sizeof(__u64);
	ssize_t got;
	size_t i;
	int fd;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	got = pread(fd, pfns, len, off);
	close(fd);
	if (got != (ssize_t)len)
		return got < 0 ? -errno : -EIO;
	for (i = 0; i < n; i++)
		pfns[i] = (pfns[i] & PM_PRESENT) ? pfns[i] & PM_PFN_MASK : 0;
	return 0;
}

/* The PFN behind @addr per /proc/self/pagemap, 0 if none or on error. */
static inline __u64 pagemap_pfn(const void *addr)
{
	__u64 pfn;

	return pagemap_pfns(addr, 1, &pfn) ? 0 : pfn;
}

/* The /proc/kpageflags word of @pfn. */
static inline int kpage_flags(__u64 pfn, __u64 *flags)
{
	ssize_t got;
	int fd;

	fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	got = pread(fd, flags, sizeof(*flags), pfn * sizeof(*flags));
	close(fd);
	if (got != sizeof(*flags))
		return got < 0 ? -errno : -EIO;
	return 0;
}

static inline bool kpf_has(__u64 pfn, int bit)
{
	__u64 flags;

	return !kpage_flags(pfn, &flags) && (flags & (1ULL << bit));
}

/*
 * The AnonHugePages value (kB) of the VMA of /proc/self/smaps that contains
 * @addr, -1 if there is none.  smaps counts only PMD-mapped THPs there, so
 * 2048 for a 2M VMA means it is mapped by one huge PMD.
 */
static inline long smaps_anon_huge_kb(const void *addr)
{
	unsigned long a = (unsigned long)addr, start, end;
	bool inside = false;
	char line[512];
	long kb = -1;
	FILE *f;

	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			if (inside)
				break;
			inside = start <= a && a < end;
			continue;
		}
		if (inside && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/*
 * A named counter of /proc/vmstat, -1 if absent.  Node counters sit in
 * per-CPU deltas for up to a second; writing /proc/sys/vm/stat_refresh
 * (root) folds them first, so that small changes show at once.
 */
static inline long long vmstat_read(const char *name)
{
	size_t len = strlen(name);
	long long val = -1;
	char line[256];
	int fd;
	FILE *f;

	fd = open("/proc/sys/vm/stat_refresh", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		/* EINVAL only reports a negative counter: the fold happened. */
		if (write(fd, "1", 1) < 0)
			errno = 0;
		close(fd);
	}
	f = fopen("/proc/vmstat", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, len) && line[len] == ' ') {
			val = strtoll(line + len + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/*
 * FOLL_PIN references held system-wide: pages pinned and not yet unpinned,
 * per /proc/vmstat.  A test compares it before and after, so that a pin the
 * module forgets (or drops twice) shows whatever the module says.
 */
static inline long long foll_pins_held(void)
{
	long long acq = vmstat_read("nr_foll_pin_acquired");
	long long rel = vmstat_read("nr_foll_pin_released");

	return acq < 0 || rel < 0 ? -1 : acq - rel;
}

/* A field of /proc/meminfo ("MemTotal", "HugePages_Free", ...), -1 if absent. */
static inline long long meminfo_read(const char *name)
{
	size_t len = strlen(name);
	long long val = -1;
	char line[256];
	FILE *f;

	f = fopen("/proc/meminfo", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, len) && line[len] == ':') {
			val = strtoll(line + len + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/* Whether the "flags" line of the first CPU in /proc/cpuinfo lists @flag. */
static inline bool cpu_has_flag(const char *flag)
{
	size_t len = strlen(flag);
	bool found = false;
	char line[8192];
	FILE *f;

	f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *p = line;

		if (strncmp(line, "flags", 5))
			continue;
		while ((p = strstr(p, flag))) {
			if (p[-1] == ' ' && (isspace(p[len]) || !p[len])) {
				found = true;
				break;
			}
			p += len;
		}
		break;
	}
	fclose(f);
	return found;
}

/* Reads a whole (pseudo-)file into a NUL-terminated buffer to free(). */
static inline char *read_text(const char *path)
{
	size_t len = 0, cap = 16384;
	char *buf = malloc(cap), *tmp;
	ssize_t got;
	int fd;

	if (!buf)
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return NULL;
	}
	while ((got = read(fd, buf + len, cap - len - 1)) > 0) {
		len += got;
		if (cap - len - 1 == 0) {
			cap *= 2;
			tmp = realloc(buf, cap);
			if (!tmp) {
				got = -1;
				break;
			}
			buf = tmp;
		}
	}
	close(fd);
	if (got < 0) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/* The number a (pseudo-)file holds, -1 if it cannot be read. */
static inline long long read_ll(const char *path)
{
	char *s = read_text(path);
	long long v = s ? strtoll(s, NULL, 10) : -1;

	free(s);
	return v;
}

/* Writes @v to a (pseudo-)file such as a sysctl; 0 or a negative errno. */
static inline int write_ll(const char *path, long long v)
{
	char buf[32];
	int fd, len, ret;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%lld\n", v);
	ret = write(fd, buf, len) == len ? 0 : -errno;
	close(fd);
	return ret;
}

/* Writes the string @s to a (pseudo-)file in one write; 0 or a negative errno. */
static inline int write_str(const char *path, const char *s)
{
	ssize_t len = strlen(s);
	int fd, ret;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = write(fd, s, len) == len ? 0 : errno ? -errno : -EIO;
	close(fd);
	return ret;
}

/*
 * A "Name:   value kB" field of /proc/@pid/status (@pid 0: ourselves), such
 * as VmPin or VmLck, in kB; -1 if absent.
 */
static inline long long proc_status_kb(pid_t pid, const char *name)
{
	size_t len = strlen(name);
	long long val = -1;
	char path[64], line[256];
	FILE *f;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, len) && line[len] == ':') {
			val = strtoll(line + len + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/* Our capability sets, through the raw syscall (no libcap in the VM). */
static inline int cap_data(struct __user_cap_data_struct *data)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};

	return syscall(SYS_capget, &hdr, data) ? -errno : 0;
}

static inline bool has_cap(int cap)
{
	struct __user_cap_data_struct data[2];

	return !cap_data(data) &&
	       (data[CAP_TO_INDEX(cap)].effective & CAP_TO_MASK(cap));
}

/* Drops @cap from the effective, permitted and inheritable sets. */
static inline int drop_cap(int cap)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];
	int ret = cap_data(data);

	if (ret)
		return ret;
	data[CAP_TO_INDEX(cap)].effective &= ~CAP_TO_MASK(cap);
	data[CAP_TO_INDEX(cap)].permitted &= ~CAP_TO_MASK(cap);
	data[CAP_TO_INDEX(cap)].inheritable &= ~CAP_TO_MASK(cap);
	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

static inline bool debugfs_mounted(void)
{
	struct statfs sfs;

	return !statfs(DEBUGFS_ROOT, &sfs) && sfs.f_type == DEBUGFS_MAGIC;
}

/* One line of debugfs snp_host/rmp or snp_host/lookup. */
struct rmp_line {
	__u64 pfn;
	__u64 gpa;
	__u32 asid;
	bool is_2m;
	unsigned int assigned;
	unsigned int immutable;
	unsigned int validated;
};

/*
 * Parses "0x<pfn> <4K|2M> assigned=<0|1> asid=<n> gpa=0x<hex>
 * immutable=<0|1> validated=<0|1>"; 0 on success, -EINVAL otherwise.
 */
static inline int rmp_parse_line(const char *s, struct rmp_line *e)
{
	unsigned long long pfn, gpa;
	unsigned int asid;
	char size[4];
	int end = -1;

	memset(e, 0, sizeof(*e));
	if (sscanf(s, "0x%llx %3s assigned=%u asid=%u gpa=0x%llx immutable=%u validated=%u%n",
		   &pfn, size, &e->assigned, &asid, &gpa, &e->immutable,
		   &e->validated, &end) != 7 || end < 0)
		return -EINVAL;
	while (s[end] == ' ' || s[end] == '\t' || s[end] == '\r')
		end++;
	if (s[end] && s[end] != '\n')
		return -EINVAL;
	if (strcmp(size, "4K") && strcmp(size, "2M"))
		return -EINVAL;
	if (e->assigned > 1 || e->immutable > 1 || e->validated > 1)
		return -EINVAL;
	e->pfn = pfn;
	e->gpa = gpa;
	e->asid = asid;
	e->is_2m = !strcmp(size, "2M");
	return 0;
}

/* debugfs snp_host/rmp parsed and sorted by PFN. */
struct rmp_table {
	struct rmp_line *e;
	size_t n;
	int bad;	/* lines that do not parse */
};

static inline int rmp_line_cmp(const void *a, const void *b)
{
	const struct rmp_line *x = a, *y = b;

	return x->pfn < y->pfn ? -1 : x->pfn > y->pfn;
}

static inline void rmp_table_free(struct rmp_table *t)
{
	free(t->e);
	memset(t, 0, sizeof(*t));
}

/* Parses a dump of debugfs snp_host/rmp into @t. */
static inline int rmp_table_parse(struct rmp_table *t, const char *dump)
{
	size_t lines = 1;
	const char *s;

	memset(t, 0, sizeof(*t));
	for (s = dump; *s; s++)
		lines += *s == '\n';
	t->e = calloc(lines, sizeof(*t->e));
	if (!t->e)
		return -ENOMEM;
	for (s = dump; s && *s; ) {
		if (*s != '\n' && rmp_parse_line(s, &t->e[t->n]))
			t->bad++;
		else if (*s != '\n')
			t->n++;
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	qsort(t->e, t->n, sizeof(*t->e), rmp_line_cmp);
	return 0;
}

static inline int rmp_table_read(struct rmp_table *t)
{
	char *dump = read_text(SNP_DEBUGFS_RMP);
	int ret;

	memset(t, 0, sizeof(*t));
	if (!dump)
		return -errno;
	ret = rmp_table_parse(t, dump);
	free(dump);
	return ret;
}

/* Number of lines naming @pfn; the first one goes to @e. */
static inline int rmp_table_find(const struct rmp_table *t, __u64 pfn,
				 struct rmp_line *e)
{
	size_t lo = 0, hi = t->n, mid;
	int count = 0;

	memset(e, 0, sizeof(*e));
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (t->e[mid].pfn < pfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < t->n && t->e[lo].pfn == pfn)
		*e = t->e[lo];
	while (lo < t->n && t->e[lo].pfn == pfn) {
		count++;
		lo++;
	}
	return count;
}

/* Asks debugfs snp_host/lookup about @pfn, written in hex or decimal. */
static inline int dbg_lookup(__u64 pfn, bool hex, struct rmp_line *e)
{
	char buf[256];
	ssize_t got;
	int fd, len;

	fd = open(SNP_DEBUGFS_LOOKUP, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), hex ? "0x%llx\n" : "%llu\n",
		       (unsigned long long)pfn);
	if (write(fd, buf, len) != len) {
		close(fd);
		return -EIO;
	}
	lseek(fd, 0, SEEK_SET);
	got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return -EIO;
	buf[got] = '\0';
	return rmp_parse_line(buf, e);
}

/* Whether /sys/kernel/mm/transparent_hugepage/enabled allows any THP. */
static inline bool thp_allowed(void)
{
	char *mode = read_text(THP_ENABLED);
	bool ok = mode && !strstr(mode, "[never]");

	free(mode);
	return ok;
}

/*
 * An anonymous mapping of exactly @size bytes, aligned to @align, with every
 * 4K page written once so that it is present and exclusively owned.
 * @advice is MADV_HUGEPAGE or MADV_NOHUGEPAGE.  It is fenced by PROT_NONE
 * guard pages so that it never merges with a neighbouring mapping (smaps
 * then describes exactly this range); munmap(base, size) leaves the guards,
 * which cost address space only.
 */
static inline char *map_anon(size_t size, size_t align, int advice)
{
	size_t len = size + align + 2 * SZ_4K, head, i;
	char *map, *base;

	map = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return NULL;
	base = (char *)(((unsigned long)map + SZ_4K + align - 1) & ~(align - 1));
	head = base - map;
	if (mprotect(map, head, PROT_NONE) ||
	    mprotect(base + size, len - head - size, PROT_NONE) ||
	    (madvise(base, size, advice) && advice != MADV_NOHUGEPAGE)) {
		munmap(map, len);
		return NULL;
	}
	for (i = 0; i < size; i += SZ_4K)
		base[i] = (char)(i / SZ_4K + 1);
	return base;
}

/* 4K pages, never part of a THP. */
static inline char *map_pages(size_t n)
{
	return map_anon(n * SZ_4K, SZ_4K, MADV_NOHUGEPAGE);
}

/* One PMD-mapped anonymous THP. */
struct thp {
	char *base;	/* 2M-aligned, the whole (2M) mapping */
	__u64 pfn;	/* head PFN */
};

/*
 * Whether @t is still one PMD-mapped THP: smaps counts 2048 kB of
 * AnonHugePages for its VMA, kpageflags marks its head PFN as THP head, and
 * pagemap maps its 512 pages to 512 consecutive PFNs from that head.
 */
static inline bool thp_intact(const struct thp *t)
{
	__u64 pfns[PAGES_PER_2M];
	int i;

	if (smaps_anon_huge_kb(t->base) != 2048)
		return false;
	if (!kpf_has(t->pfn, KPF_THP) || !kpf_has(t->pfn, KPF_COMPOUND_HEAD))
		return false;
	if (pagemap_pfns(t->base, PAGES_PER_2M, pfns))
		return false;
	for (i = 0; i < PAGES_PER_2M; i++)
		if (pfns[i] != t->pfn + i)
			return false;
	return true;
}

/*
 * Gets a THP: a 2M-aligned 2M mapping with MADV_HUGEPAGE, written, and if
 * the fault did not give a huge page, MADV_COLLAPSE.  Returns 0, -ENOTSUP
 * when THP is disabled, -ENOMEM when the kernel gave no THP.
 */
static inline int thp_alloc(struct thp *t)
{
	memset(t, 0, sizeof(*t));
	if (!thp_allowed())
		return -ENOTSUP;
	t->base = map_anon(SZ_2M, SZ_2M, MADV_HUGEPAGE);
	if (!t->base)
		return -ENOMEM;
	if (smaps_anon_huge_kb(t->base) != 2048)
		madvise(t->base, SZ_2M, MADV_COLLAPSE);
	t->pfn = pagemap_pfn(t->base);
	if (!t->pfn || !thp_intact(t)) {
		munmap(t->base, SZ_2M);
		t->base = NULL;
		return -ENOMEM;
	}
	return 0;
}

static inline void thp_free(struct thp *t)
{
	if (t->base)
		munmap(t->base, SZ_2M);
	t->base = NULL;
}

/*
 * Walks the kernel log from its oldest record.  /dev/kmsg gives one record
 * per read, "prio,seq,usec,flags;text"; O_NONBLOCK ends the walk at the
 * tail, EPIPE only says records were overwritten meanwhile.  Copies the last
 * record after sequence number @after that contains @needle into @buf (if
 * @buf is not NULL), and the sequence number of the last record of the log
 * into *@last (if @last is not NULL).  @needle NULL matches nothing.
 * Returns 1 if found, 0 if not, a negative errno if the log cannot be read.
 */
static inline int kmsg_scan(long long after, const char *needle, char *buf,
			    size_t size, long long *last)
{
	unsigned long long seq;
	char rec[8192];
	int fd, found = 0;
	ssize_t n;

	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((n = read(fd, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
		if (n <= 0)
			continue;
		rec[n] = '\0';
		if (sscanf(rec, "%*u,%llu,", &seq) != 1)
			continue;
		if (last)
			*last = seq;
		if ((long long)seq <= after || !needle || !strstr(rec, needle))
			continue;
		if (buf)
			snprintf(buf, size, "%s", rec);
		found = 1;
	}
	close(fd);
	return found;
}

/* The last kernel-log record containing @needle, as kmsg_scan(). */
static inline int kmsg_find(const char *needle, char *buf, size_t size)
{
	return kmsg_scan(-1, needle, buf, size, NULL);
}

/* The sequence number of the newest kernel-log record, -1 if unknown. */
static inline long long kmsg_last_seq(void)
{
	long long last = -1;

	kmsg_scan(-1, NULL, NULL, 0, &last);
	return last;
}

/*
 * True when snp_host is built into the kernel (CONFIG_SNP_HOST=y): the kernel
 * makes /sys/module/snp_host for the parameters of a built-in module too, but
 * initstate only for one that was loaded.  Such a module cannot be unloaded.
 */
static inline bool snp_builtin(void)
{
	return !access(SNP_MODULE_DIR, F_OK) && access(SNP_MODULE_DIR "/initstate", F_OK);
}

#endif /* SNP_HOST_UTIL_H */
