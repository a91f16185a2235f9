#!/usr/bin/perl
# Lays an erofs image out as an fsdax NVDIMM namespace, the root pod VMs map instead of reading:
#   pfn-root.pl IN.erofs OUT
# A label-less NVDIMM namespace becomes fsdax when Linux finds an NVDIMM PFN info block 4 KiB into it
# (struct nd_pfn_sb, drivers/nvdimm/pfn.h, checked by nd_pfn_validate in pfn_devs.c). Its data, here the
# erofs image, starts at `dataoff`, 2 MiB in: the guest maps it with 2 MiB alignment. Mode "ram": the
# guest keeps the struct pages for the namespace in its own RAM, since the NVDIMM is read-only. The file's
# size is a multiple of 2 MiB, the granularity in which the guest's memory hotplug takes the namespace.
use strict;
use warnings;
use Digest::MD5 qw(md5);

@ARGV == 2 or die "usage: $0 IN.erofs OUT\n";
my ($in, $out) = @ARGV;
my $align = 2 * 1024 * 1024;
my $page = 4096;

open my $fin, '<:raw', $in or die "$in: $!\n";
my $data = do { local $/; <$fin> };
close $fin;
length $data or die "$in is empty\n";
my $size = $align + length $data;
$size += ($align - $size % $align) % $align;

# Version 1.4; the parent uuid stays zero (a label-less namespace has none); the block's own uuid names
# the image, so the same image gives the same file.
my $block = pack(
    'a16 a16 a16 V v v Q< Q< V V V V V v',
    'NVDIMM_PFN_INFO', md5($data), '', 0, 1, 4,
    $align,                    # dataoff
    ($size - $align) / $page,  # npfns
    1,                         # mode: PFN_MODE_RAM
    0, 0,                      # start_pad, end_trunc
    $align, $page, 64          # align, page_size, page_struct_size
);
$block .= "\0" x ($page - length $block);    # padding and a zero checksum, which the sum covers
# nd_fletcher64 over the block's 32-bit little-endian words.
my ($lo, $hi) = (0, 0);
for my $word (unpack 'V*', $block) {
    $lo = ($lo + $word) & 0xffffffff;
    $hi = ($hi + $lo) & 0xffffffff;
}
substr($block, $page - 8, 8) = pack('V V', $lo, $hi);

open my $fout, '>:raw', $out or die "$out: $!\n";
print $fout "\0" x $page, $block, "\0" x ($align - 2 * $page), $data, "\0" x ($size - $align - length $data)
    or die "$out: $!\n";
close $fout or die "$out: $!\n";
