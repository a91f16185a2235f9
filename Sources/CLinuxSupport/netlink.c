// Network configuration over rtnetlink (NETLINK_ROUTE), acting in the calling thread's network namespace:
// the guest has no iproute2, and the host's tests run the same code in a namespace of their own.
#define _GNU_SOURCE
#include "CLinuxSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
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

// Reading a link back: one RTM_GETLINK, then dumps of the addresses and routes, keeping the link's own.

// A dump's datagrams are at most 32 KiB (the kernel sizes them by what the reader took before, up to that).
#define DUMP_BUFFER 32768

// Sends `r` (a dump when NLM_F_DUMP is set) and hands each answer message to `take` until the kernel says done.
static int exchange(int fd, union request *r, void (*take)(struct nlmsghdr *, struct pv_link_state *), struct pv_link_state *out,
                    char buffer[DUMP_BUFFER]) {
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, r->bytes, r->header.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) return -errno;
    int dump = (r->header.nlmsg_flags & NLM_F_DUMP) != 0;
    for (;;) {
        ssize_t n;
        do n = recv(fd, buffer, DUMP_BUFFER, MSG_TRUNC);
        while (n < 0 && errno == EINTR);
        if (n < 0) return -errno;
        if (n > DUMP_BUFFER) return -EMSGSIZE;
        for (struct nlmsghdr *m = (struct nlmsghdr *)buffer; NLMSG_OK(m, (size_t)n); m = NLMSG_NEXT(m, n)) {
            if (m->nlmsg_type == NLMSG_DONE) return 0;
            if (m->nlmsg_type == NLMSG_ERROR) {
                if (m->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return -EPROTO;
                int error = ((struct nlmsgerr *)NLMSG_DATA(m))->error;
                if (error != 0 || !dump) return error;
                continue;
            }
            take(m, out);
            if (!dump) return 0;
        }
    }
}

static void take_link(struct nlmsghdr *m, struct pv_link_state *out) {
    if (m->nlmsg_type != RTM_NEWLINK) return;
    struct ifinfomsg *link = NLMSG_DATA(m);
    int length = (int)IFLA_PAYLOAD(m);
    for (struct rtattr *a = IFLA_RTA(link); RTA_OK(a, length); a = RTA_NEXT(a, length)) {
        if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6) memcpy(out->mac, RTA_DATA(a), 6);
        if (a->rta_type == IFLA_MTU && RTA_PAYLOAD(a) >= 4) memcpy(&out->mtu, RTA_DATA(a), 4);
    }
}

static void take_address(struct nlmsghdr *m, struct pv_link_state *out) {
    struct ifaddrmsg *a = NLMSG_DATA(m);
    if (m->nlmsg_type != RTM_NEWADDR || (int)a->ifa_index != out->ifindex) return;
    size_t size = address_length(a->ifa_family);
    const void *local = NULL, *address = NULL;
    int length = (int)IFA_PAYLOAD(m);
    for (struct rtattr *r = IFA_RTA(a); RTA_OK(r, length); r = RTA_NEXT(r, length)) {
        if (RTA_PAYLOAD(r) != size) continue;
        if (r->rta_type == IFA_LOCAL) local = RTA_DATA(r);
        if (r->rta_type == IFA_ADDRESS) address = RTA_DATA(r);
    }
    // IPv4 names the interface's own address IFA_LOCAL (IFA_ADDRESS is the peer's on point-to-point links).
    if (!size || !(local || address)) return;
    if (out->address_count == PV_LINK_MAX_ADDRESSES) {
        out->truncated = 1;
        return;
    }
    struct pv_link_address *entry = &out->addresses[out->address_count++];
    entry->family = a->ifa_family;
    memcpy(entry->address, local ? local : address, size);
    entry->prefix_length = a->ifa_prefixlen;
    entry->scope = a->ifa_scope;
}

static void take_route(struct nlmsghdr *m, struct pv_link_state *out) {
    struct rtmsg *route = NLMSG_DATA(m);
    if (m->nlmsg_type != RTM_NEWROUTE || route->rtm_table != RT_TABLE_MAIN) return;
    size_t size = address_length(route->rtm_family);
    if (!size) return;
    struct pv_link_route entry = {.family = route->rtm_family, .destination_length = route->rtm_dst_len, .protocol = route->rtm_protocol};
    int oif = 0, length = (int)RTM_PAYLOAD(m);
    for (struct rtattr *a = RTM_RTA(route); RTA_OK(a, length); a = RTA_NEXT(a, length)) {
        if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) == sizeof(int)) memcpy(&oif, RTA_DATA(a), sizeof(int));
        if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) == size) memcpy(entry.destination, RTA_DATA(a), size);
        if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) == size) {
            memcpy(entry.gateway, RTA_DATA(a), size);
            entry.has_gateway = 1;
        }
    }
    if (oif != out->ifindex) return;
    if (out->route_count == PV_LINK_MAX_ROUTES) {
        out->truncated = 1;
        return;
    }
    out->routes[out->route_count++] = entry;
}

static int read_link(const char *name, struct pv_link_state *out) {
    out->ifindex = (int)if_nametoindex(name);
    if (out->ifindex == 0) return -errno;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -errno;
    char buffer[DUMP_BUFFER];
    union request r;
    struct ifinfomsg *link = start(&r, RTM_GETLINK, 0, sizeof(*link));
    r.header.nlmsg_flags = NLM_F_REQUEST;
    link->ifi_family = AF_UNSPEC;
    link->ifi_index = out->ifindex;
    int rc = exchange(fd, &r, take_link, out, buffer);
    if (rc == 0) {
        struct ifaddrmsg *a = start(&r, RTM_GETADDR, 0, sizeof(*a));
        r.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        a->ifa_family = AF_UNSPEC;
        rc = exchange(fd, &r, take_address, out, buffer);
    }
    if (rc == 0) {
        struct rtmsg *route = start(&r, RTM_GETROUTE, 0, sizeof(*route));
        r.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        route->rtm_family = AF_UNSPEC;
        rc = exchange(fd, &r, take_route, out, buffer);
    }
    close(fd);
    return rc;
}

// Runs `work` on a thread of its own that enters the network namespace pinned at `netns_path` (setns moves
// only the calling thread) and ends: no thread of the caller ever changes namespace.
struct netns_job {
    int netns;
    int (*work)(void *);
    void *argument;
    int rc;
};

static void *netns_thread(void *argument) {
    struct netns_job *job = argument;
    job->rc = setns(job->netns, CLONE_NEWNET) == 0 ? job->work(job->argument) : -errno;
    return NULL;
}

static int in_netns(const char *netns_path, int (*work)(void *), void *argument) {
    int netns = open(netns_path, O_RDONLY | O_CLOEXEC);
    if (netns < 0) return -errno;
    struct netns_job job = {netns, work, argument, 0};
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, netns_thread, &job);
    if (rc == 0) {
        pthread_join(thread, NULL);
        rc = job.rc;
    } else {
        rc = -rc;
    }
    close(netns);
    return rc;
}

struct read_request {
    const char *name;
    struct pv_link_state *out;
};

static int read_work(void *argument) {
    struct read_request *request = argument;
    return read_link(request->name, request->out);
}

int pv_netns_read_link(const char *netns_path, const char *name, struct pv_link_state *out) {
    memset(out, 0, sizeof(*out));
    struct read_request request = {name, out};
    return in_netns(netns_path, read_work, &request);
}

struct up_request {
    const char *name;
    uint32_t mtu;
};

static int up_work(void *argument) {
    struct up_request *request = argument;
    int ifindex = (int)if_nametoindex(request->name);
    return ifindex == 0 ? -errno : pv_link_set(ifindex, NULL, NULL, request->mtu, 1);
}

int pv_netns_link_up(const char *netns_path, const char *name, uint32_t mtu) {
    struct up_request request = {name, mtu};
    return in_netns(netns_path, up_work, &request);
}
