/**
 * shm-channel/nats: the same channels, topics and services beyond one
 * machine, over NATS (docs/nats.md). Loaded only through this entry point:
 * the NATS client packages (@nats-io/transport-node, @nats-io/jetstream)
 * are optional peer dependencies, and the main entry point never loads them.
 */
import * as bridge from './bridge'

export const bridgeChannelToStream = bridge.bridgeChannelToStream
export const bridgeStreamToChannel = bridge.bridgeStreamToChannel
export const removeBridgeState = bridge.removeBridgeState
export type { Bridge, ChannelToStreamOptions, StreamToChannelOptions, StreamTarget } from './bridge'

import * as service from './service'

export const serve = service.serve
export const connect = service.connect
export const NatsService = service.NatsService
export const ERROR_HEADER = service.ERROR_HEADER
export type { NatsServeOptions, NatsConnectOptions, ServiceClient } from './service'

import * as topic from './topic'

export const mirrorTopicToSubject = topic.mirrorTopicToSubject
export const feedSubjectToTopic = topic.feedSubjectToTopic
export const ORIGIN_HEADER = topic.ORIGIN_HEADER
export type { TopicMirrorOptions, TopicLink } from './topic'
