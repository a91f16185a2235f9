// Network configuration over rtnetlink (NETLINK_ROUTE), acting in the calling thread's network namespace:
// the guest has no iproute2, and the host's tests run the same code in a namespace of their own.
#define _GNU_SOURCE
#include "CLinuxSupport.h"

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

// One request: the netlink header, the message's own header, its attributes. Our largest (a link with a
// name and an MTU, or a route with destination, gateway and interface) takes well under 128 bytes.
union request {
    struct nlmsghdr header;
    char bytes[256];
};

static void *start(union request *r, uint16_t type, uint16_t flags, size_t length) {
    memset(r, 0, sizeof(*r));
    r->header.nlmsg_len = NLMSG_LENGTH(length);
    r->header.nlmsg_type = type;
    r->header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    return NLMSG_DATA(&r->header);
}

static void attribute(union request *r, uint16_t type, const void *data, size_t length) {
    struct rtattr *a = (struct rtattr *)(r->bytes + NLMSG_ALIGN(r->header.nlmsg_len));
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(length);
    memcpy(RTA_DATA(a), data, length);
    r->header.nlmsg_len = NLMSG_ALIGN(r->header.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

// Sends the request on a socket of its own and reads the kernel's answer: 0 (the acknowledgement), or -errno.
static int transact(union request *r) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -errno;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    int rc = -EPROTO;
    if (sendto(fd, r->bytes, r->header.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        rc = -errno;
    } else {
        // NLMSG_ERROR with error 0 is the acknowledgement NLM_F_ACK asked for; anything else is -errno.
        union request answer;
        ssize_t n;
        do n = recv(fd, answer.bytes, sizeof(answer.bytes), 0);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            rc = -errno;
        } else if (NLMSG_OK(&answer.header, (size_t)n) && answer.header.nlmsg_type == NLMSG_ERROR &&
                   answer.header.nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
            rc = ((struct nlmsgerr *)NLMSG_DATA(&answer.header))->error;
        }
    }
    close(fd);
    return rc;
}

int pv_link_index_by_mac(const uint8_t mac[6]) {
    struct if_nameindex *links = if_nameindex();
    if (!links) return -errno;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int found = fd < 0 ? -errno : -ENODEV;
    for (struct if_nameindex *l = links; fd >= 0 && l->if_index != 0; l++) {
        struct ifreq request;
        memset(&request, 0, sizeof(request));
        strncpy(request.ifr_name, l->if_name, IFNAMSIZ - 1);
        if (ioctl(fd, SIOCGIFHWADDR, &request) == 0 && memcmp(request.ifr_hwaddr.sa_data, mac, 6) == 0) {
            found = (int)l->if_index;
            break;
        }
    }
    if (fd >= 0) close(fd);
    if_freenameindex(links);
    return found;
}

static int set_up(int ifindex, int up) {
    union request r;
    struct ifinfomsg *link = start(&r, RTM_NEWLINK, 0, sizeof(*link));
    link->ifi_family = AF_UNSPEC;
    link->ifi_index = ifindex;
    link->ifi_flags = up ? IFF_UP : 0;
    link->ifi_change = IFF_UP;
    return transact(&r);
}

int pv_link_set(int ifindex, const char *name, const uint8_t mac[6], uint32_t mtu, int up) {
    if (name && strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
    // The kernel renames only a link that is down: a fresh NIC is, one configured before must go down first.
    int rc = name || mac ? set_up(ifindex, 0) : 0;
    if (rc == 0 && (name || mac || mtu)) {
        union request r;
        struct ifinfomsg *link = start(&r, RTM_NEWLINK, 0, sizeof(*link));
        link->ifi_family = AF_UNSPEC;
        link->ifi_index = ifindex;
        if (name) attribute(&r, IFLA_IFNAME, name, strlen(name) + 1);
        if (mac) attribute(&r, IFLA_ADDRESS, mac, 6);
        if (mtu) attribute(&r, IFLA_MTU, &mtu, sizeof(mtu));
        rc = transact(&r);
    }
    return rc == 0 && up ? set_up(ifindex, 1) : rc;
}

static size_t address_length(int family) {
    return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

int pv_addr_add(int ifindex, int family, const uint8_t *address, uint8_t prefix_length) {
    size_t length = address_length(family);
    if (!length || prefix_length > length * 8) return -EINVAL;
    union request r;
    // Replace: configuring twice (a host retrying) ends in the same state instead of failing with EEXIST.
    struct ifaddrmsg *a = start(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, sizeof(*a));
    a->ifa_family = family;
    a->ifa_prefixlen = prefix_length;
    a->ifa_index = ifindex;
    // No duplicate address detection: the address is usable at once instead of "tentative" for a second.
    if (family == AF_INET6) a->ifa_flags = IFA_F_NODAD;
    attribute(&r, IFA_LOCAL, address, length);
    attribute(&r, IFA_ADDRESS, address, length);
    return transact(&r);
}

int pv_route_add(int family, const uint8_t *destination, uint8_t prefix_length, const uint8_t *gateway, int ifindex) {
    size_t length = address_length(family);
    if (!length || prefix_length > length * 8) return -EINVAL;
    union request r;
    struct rtmsg *route = start(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, sizeof(*route));
    route->rtm_family = family;
    route->rtm_dst_len = prefix_length;
    route->rtm_table = RT_TABLE_MAIN;
    route->rtm_protocol = RTPROT_BOOT;
    route->rtm_type = RTN_UNICAST;
    // As iproute2: an IPv4 route without a gateway reaches its destination on the link itself.
    route->rtm_scope = family == AF_INET && !gateway ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
    if (prefix_length) attribute(&r, RTA_DST, destination, length);
    if (gateway) attribute(&r, RTA_GATEWAY, gateway, length);
    if (ifindex > 0) attribute(&r, RTA_OIF, &ifindex, sizeof(ifindex));
    return transact(&r);
}

int pv_enter_network_namespace(int fd) {
    return setns(fd, CLONE_NEWNET);
}
