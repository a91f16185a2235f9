// rtnetlink requests for the guest's network (no iproute2 in the guest): one request per call, each
// acknowledged by the kernel (NLM_F_ACK), so every failure comes back as the kernel's errno.
#include "CLinuxSupport.h"

#include <errno.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct request {
    struct nlmsghdr header;
    union {
        struct ifinfomsg link;
        struct ifaddrmsg address;
        struct rtmsg route;
    };
    char attributes[256];
};

static int add_attribute(struct request *r, unsigned short type, const void *data, size_t length) {
    size_t size = RTA_LENGTH(length);
    if (NLMSG_ALIGN(r->header.nlmsg_len) + RTA_ALIGN(size) > sizeof(*r)) return -EMSGSIZE;
    struct rtattr *attribute = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->header.nlmsg_len));
    attribute->rta_type = type;
    attribute->rta_len = (unsigned short)size;
    if (length > 0) memcpy(RTA_DATA(attribute), data, length);
    r->header.nlmsg_len = NLMSG_ALIGN(r->header.nlmsg_len) + RTA_ALIGN(size);
    return 0;
}

// Sends the request and reads the kernel's acknowledgement: 0, or -errno.
static int transact(struct request *r) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -errno;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    r->header.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    r->header.nlmsg_seq = 1;
    int result = -EIO;
    if (sendto(fd, r, r->header.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        result = -errno;
    } else {
        char answer[4096];
        ssize_t n;
        while ((n = recv(fd, answer, sizeof(answer), 0)) < 0 && errno == EINTR) {}
        if (n < 0) {
            result = -errno;
        } else {
            for (struct nlmsghdr *h = (struct nlmsghdr *)answer; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
                if (h->nlmsg_type == NLMSG_ERROR) {
                    result = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
                    break;
                }
            }
        }
    }
    close(fd);
    return result;
}

static void start(struct request *r, unsigned short type, unsigned short flags, size_t body) {
    memset(r, 0, sizeof(*r));
    r->header.nlmsg_len = NLMSG_LENGTH(body);
    r->header.nlmsg_type = type;
    r->header.nlmsg_flags = flags;
}

int pv_link_set(int ifindex, const char *name, unsigned mtu, int up) {
    struct request r;
    start(&r, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
    r.link.ifi_family = AF_UNSPEC;
    r.link.ifi_index = ifindex;
    r.link.ifi_change = IFF_UP;
    r.link.ifi_flags = up ? IFF_UP : 0;
    int rc = 0;
    if (name && *name) rc = add_attribute(&r, IFLA_IFNAME, name, strlen(name) + 1);
    if (rc == 0 && mtu > 0) rc = add_attribute(&r, IFLA_MTU, &mtu, sizeof(mtu));
    return rc ? rc : transact(&r);
}

int pv_address_add(int ifindex, int family, const void *address, unsigned char prefix) {
    struct request r;
    start(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, sizeof(struct ifaddrmsg));
    r.address.ifa_family = (unsigned char)family;
    r.address.ifa_prefixlen = prefix;
    r.address.ifa_index = (unsigned)ifindex;
    r.address.ifa_scope = RT_SCOPE_UNIVERSE;
    // No duplicate address detection: the pod's address is its own, and usable at once.
    if (family == AF_INET6) r.address.ifa_flags = IFA_F_NODAD;
    size_t length = family == AF_INET ? 4 : 16;
    int rc = add_attribute(&r, IFA_LOCAL, address, length);
    if (rc == 0) rc = add_attribute(&r, IFA_ADDRESS, address, length);
    return rc ? rc : transact(&r);
}

int pv_route_add(int family, const void *destination, unsigned char prefix, const void *gateway, int ifindex) {
    struct request r;
    start(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, sizeof(struct rtmsg));
    r.route.rtm_family = (unsigned char)family;
    r.route.rtm_dst_len = prefix;
    r.route.rtm_table = RT_TABLE_MAIN;
    r.route.rtm_protocol = RTPROT_BOOT;
    r.route.rtm_type = RTN_UNICAST;
    r.route.rtm_scope = gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
    size_t length = family == AF_INET ? 4 : 16;
    int rc = 0;
    if (prefix > 0) rc = add_attribute(&r, RTA_DST, destination, length);
    if (rc == 0 && gateway) rc = add_attribute(&r, RTA_GATEWAY, gateway, length);
    if (rc == 0) rc = add_attribute(&r, RTA_OIF, &ifindex, sizeof(ifindex));
    return rc ? rc : transact(&r);
}
