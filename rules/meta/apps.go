package meta

// allServices lists every service table.  To add a service, write its
// Service value in a svc_NAME.go file and add it here (see README.md).
var allServices = []Service{
	bodhiService,
	kojiService, distgitService, composeService, pungiService,
	pagureService, jenkinsService, ciService,
	pkgdbService, githubService,
	bugzillaService, tracService, openqaService, fmnService,
	wikiService, ansibleService, badgesService, coprService, datanommerService,
	electionsService, fafService, fasService, fedocalService, greenwaveService,
	kerneltestService, koscheiService, mailmanService, mbsService, mdapiService,
	mirrormanagerService, nagiosService, nuancierService, odcsService, pdcService,
	relengService, summershumService, taggerService, taskotronService,
	waiverdbService, zanataService, meetbotService, ircService, fedoracollegeService,
	fedimgService, ratsService, planetService,
	anityaService, hotnessService, askbotService, autocloudService,
}
