// minimal RocketMQ send client: replays one captured SendMessageV2 frame, 1 in flight.
// usage: bc <port> <spin 0|1> <seconds> <framefile>
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
static int rd(int fd, unsigned char*b, int n, int spin){int got=0;while(got<n){int r=recv(fd,b+got,n-got,spin?MSG_DONTWAIT:0);if(r>0)got+=r;else if(r<0&&errno==EAGAIN)continue;else return -1;}return got;}
static long ns(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000L+t.tv_nsec;}
static int cmp(const void*a,const void*b){long x=*(long*)a,y=*(long*)b;return x<y?-1:x>y;}
int main(int c,char**v){int port=atoi(v[1]),spin=atoi(v[2]),secs=atoi(v[3]);
 unsigned char fr[4096];int fd0=open(v[4],O_RDONLY);int fl=read(fd0,fr,251);close(fd0);
 cpu_set_t s;CPU_ZERO(&s);CPU_SET(0,&s);sched_setaffinity(0,sizeof s,&s);
 int fd=socket(AF_INET,SOCK_STREAM,0);struct sockaddr_in a={0};a.sin_family=AF_INET;a.sin_port=htons(port);a.sin_addr.s_addr=htonl(0x7f000001);
 if(connect(fd,(void*)&a,sizeof a)){perror("connect");return 1;}int one=1;setsockopt(fd,IPPROTO_TCP,TCP_NODELAY,&one,4);
 static long lat[2000000];int n=0,bad=0;unsigned char r[65536];long end=ns()+secs*1000000000L;
 while(ns()<end&&n<2000000){long st=ns();if(send(fd,fr,fl,0)!=fl){perror("send");return 1;}
  if(rd(fd,r,4,spin)<0)return 1;int len=(r[0]<<24)|(r[1]<<16)|(r[2]<<8)|r[3];if(rd(fd,r+4,len,spin)<0)return 1;
  if(!memmem(r+8,len-4,"\"code\":0",8))bad++;
  lat[n++]=ns()-st;}
 qsort(lat,n,sizeof(long),cmp);printf("client_spin=%d n=%d bad=%d p50=%.1fus p99=%.1fus p99.9=%.1fus\n",spin,n,bad,lat[n/2]/1e3,lat[n*99/100]/1e3,lat[n*999/1000]/1e3);
 r[200]=0; if(bad) printf("%s\n", r+8); return 0;}
