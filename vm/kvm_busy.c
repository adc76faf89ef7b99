// SPDX-License-Identifier: GPL-2.0
/*
 * rmmod of snp_host is refused while a running VM has pages private through
 * it (issue 10): a software-protected VM with a guest_memfd slot, whose
 * first 64 KiB KVM faults in as private memory (KVM_PRE_FAULT_MEMORY), which
 * makes them private through the module.  delete_module(O_NONBLOCK) must
 * then fail with EWOULDBLOCK ("in use") and leave the module working; once
 * the VM and its guest_memfd are closed, every page must be back.
 *
 * Run in the test VM with the module loaded and no other user of it (the
 * module must be unloadable but for this VM).  Exit status: 0 pass, 4 skip
 * (no KVM, no software-protected VMs, no pre-faulting), 1 fail.
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
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/snp_host.h>

#define KSFT_SKIP 4
#define SLOT_SIZE (2UL << 20)
#define PREFAULT_SIZE (64UL << 10)

/* The module's KVM counters, opening the device only for the read. */
static int kvm_stats(struct snp_host_kvm_stats *s)
{
	int fd = open("/dev/snp_host", O_RDWR | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, SNP_HOST_GET_KVM_STATS, s))
		ret = -errno;
	close(fd);
	return ret;
}

static int skip(const char *why)
{
	printf("SKIP: %s\n", why);
	return KSFT_SKIP;
}

int main(void)
{
	struct kvm_create_guest_memfd gmem = { .size = SLOT_SIZE };
	struct kvm_memory_attributes attrs = {
		.address = 0,
		.size = SLOT_SIZE,
		.attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE,
	};
	struct kvm_pre_fault_memory range = { .gpa = 0, .size = PREFAULT_SIZE };
	struct kvm_userspace_memory_region2 region = {
		.slot = 0,
		.flags = KVM_MEM_GUEST_MEMFD,
		.guest_phys_addr = 0,
		.memory_size = SLOT_SIZE,
	};
	struct snp_host_kvm_stats k0, k1, k2;
	int kvm, vm, vcpu, gfd, ret, bad = 0;
	void *shared;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return skip("no /dev/kvm");
	if (!(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES) & (1 << KVM_X86_SW_PROTECTED_VM)))
		return skip("no software-protected VMs (CONFIG_KVM_SW_PROTECTED_VM)");
	if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_PRE_FAULT_MEMORY) <= 0)
		return skip("no KVM_PRE_FAULT_MEMORY");
	ret = kvm_stats(&k0);
	if (ret) {
		printf("FAIL: GET_KVM_STATS: %s (is snp_host loaded?)\n", strerror(-ret));
		return 1;
	}

	vm = ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	if (vm < 0) {
		printf("FAIL: KVM_CREATE_VM: %s\n", strerror(errno));
		return 1;
	}
	gfd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &gmem);
	shared = mmap(NULL, SLOT_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (gfd < 0 || shared == MAP_FAILED) {
		printf("FAIL: guest_memfd or the shared memory: %s\n", strerror(errno));
		return 1;
	}
	region.userspace_addr = (uintptr_t)shared;
	region.guest_memfd = gfd;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region) ||
	    ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &attrs)) {
		printf("FAIL: memory slot or attributes: %s\n", strerror(errno));
		return 1;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		printf("FAIL: KVM_CREATE_VCPU: %s\n", strerror(errno));
		return 1;
	}
	while (range.size) {
		if (ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &range) && errno != EINTR &&
		    errno != EAGAIN) {
			printf("FAIL: KVM_PRE_FAULT_MEMORY at %#llx: %s\n",
			       (unsigned long long)range.gpa, strerror(errno));
			return 1;
		}
	}

	ret = kvm_stats(&k1);
	if (ret) {
		printf("FAIL: GET_KVM_STATS: %s\n", strerror(-ret));
		return 1;
	}
	printf("private through the module with the VM running: %llu pages\n",
	       k1.private_4k_now);
	if (k1.private_4k_now < PREFAULT_SIZE / 4096) {
		printf("FAIL: fewer than %lu pages private\n", PREFAULT_SIZE / 4096);
		bad = 1;
	}

	ret = syscall(SYS_delete_module, "snp_host", O_NONBLOCK) ? -errno : 0;
	if (!ret) {
		printf("FAIL: delete_module unloaded snp_host with a VM's pages private\n");
		return 1;
	}
	if (ret != -EWOULDBLOCK) {
		printf("FAIL: delete_module: %s, not EWOULDBLOCK\n", strerror(-ret));
		bad = 1;
	} else {
		printf("delete_module refused: %s\n", strerror(-ret));
	}

	close(vcpu);
	close(vm);
	close(gfd);
	munmap(shared, SLOT_SIZE);

	ret = kvm_stats(&k2);
	if (ret) {
		printf("FAIL: GET_KVM_STATS after the VM: %s\n", strerror(-ret));
		return 1;
	}
	printf("after the VM: %llu private, made private +%llu, returned +%llu, leaked +%llu\n",
	       k2.private_4k_now, k2.make_private - k0.make_private,
	       k2.make_shared - k0.make_shared, k2.leaked_pages - k0.leaked_pages);
	if (k2.private_4k_now || k2.leaked_pages != k0.leaked_pages ||
	    k2.make_private - k0.make_private != k2.make_shared - k0.make_shared) {
		printf("FAIL: pages not all back\n");
		bad = 1;
	}
	return bad;
}
